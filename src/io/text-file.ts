/** Reading small text and JSON files (configs, prompt ids, benchmark results) with errors that name the file. */
import { readFileSync } from 'node:fs';

/** The file's text; errors read `FILE: file not found`, `FILE: is a directory, not a file`, `FILE: cannot read (...)`. */
export function readTextFile(file: string, hint = ''): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const extra = hint ? ` (${hint})` : '';
    if (code === 'ENOENT') throw new Error(`${file}: file not found${extra}`);
    if (code === 'EISDIR') throw new Error(`${file}: is a directory, not a file${extra}`);
    throw new Error(`${file}: cannot read (${(e as Error).message})`);
  }
}

/** The file parsed as JSON; `FILE: not valid JSON (...)` otherwise. */
export function readJsonFile(file: string, hint = ''): unknown {
  const text = readTextFile(file, hint);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}
