/**
 * Where the CLI writes: stdout for results, stderr for errors, progress and notes. Commands write
 * through `io()` so that a caller — the tests — can capture their output without touching
 * process.stdout (which the test runner itself reports through).
 */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: CliIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

let current: CliIo = processIo;

export function io(): CliIo {
  return current;
}

/** Runs fn with the CLI's output going to `sink`. */
export async function withIo<T>(sink: CliIo, fn: () => Promise<T>): Promise<T> {
  const previous = current;
  current = sink;
  try {
    return await fn();
  } finally {
    current = previous;
  }
}
