/**
 * Errors that carry the exit code of README.md's exit-code table, so every command ends the same way:
 * one line on stderr, no stack trace unless DEBUG is set.
 *
 * @example
 *   throw new InputError('runs/a.safetensors', "tensor 'depth': expected F32, got F16");
 */
export class VggrpoError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad input or usage (exit 2): names the file (or flag / key) and the fault. */
export class InputError extends VggrpoError {
  constructor(
    readonly where: string,
    readonly fault: string,
  ) {
    super(where ? `${where}: ${fault}` : fault, 2);
  }
}

/** Runtime or numerical failure (exit 1): stage not built, non-finite loss, ratio ≠ 1, ORT error. */
export class RuntimeFailure extends VggrpoError {
  constructor(message: string) {
    super(message, 1);
  }
}

/** The one argument-check helper, so every check reads the same. */
export function check(cond: unknown, where: string, fault: string): asserts cond {
  if (!cond) throw new InputError(where, fault);
}
