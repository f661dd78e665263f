/// <reference types="vite/client" />
declare module 'virtual:haystack' {
  const text: string
  export default text
}
