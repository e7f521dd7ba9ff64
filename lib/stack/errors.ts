/** A stack failure that the CLI prints as one line with what to do, then exits non-zero. */
export class StackError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StackError";
    this.code = code;
  }
}
