/**
 * An error the server answers with, in OpenAI's shape: HTTP `status` and
 * `{ "error": { "message", "type", "param", "code" } }`. `param` names the request field at fault
 * (`messages[1].content`, `max_tokens`, `kv_policy`), null where none is.
 */
export class ApiError extends Error {
  override name = 'ApiError'

  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message)
  }

  /** OpenAI's error types: 400/404/413 invalid_request_error, 401 authentication_error, 5xx server_error */
  get type(): string {
    if (this.status === 401) return 'authentication_error'
    if (this.status >= 500) return 'server_error'
    return 'invalid_request_error'
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } }
  }
}
