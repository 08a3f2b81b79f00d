// A ustar (tar) writer for the stand-in's workspace export: text files only, with the
// headers windmill-api writes.
import { HttpError } from "../shared/http.ts";

const TAR_BLOCK = 512;

/** A ustar archive of text files, with the headers windmill-api writes (mode 0777, uid/gid/mtime 0). */
export function tarArchive(files: Map<string, string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [path, text] of files) {
    const body = Buffer.from(text, "utf8");
    blocks.push(tarHeader(path, body.length), body, Buffer.alloc(padding(body.length)));
  }
  blocks.push(Buffer.alloc(TAR_BLOCK * 2));
  return Buffer.concat(blocks);
}

function tarHeader(path: string, size: number): Buffer {
  const header = Buffer.alloc(TAR_BLOCK);
  const [prefix, name] = splitTarPath(path);
  header.write(name, 0, 100, "utf8");
  header.write(octal(0o777, 8), 100);
  header.write(octal(0, 8), 108);
  header.write(octal(0, 8), 116);
  header.write(octal(size, 12), 124);
  header.write(octal(0, 12), 136);
  header.write(" ".repeat(8), 148);
  header.write("0", 156);
  header.write("ustar\u000000", 257);
  header.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, "0")}\u0000 `, 148);
  return header;
}

/** ustar keeps names up to 100 bytes, plus a 155-byte directory prefix. */
function splitTarPath(path: string): [string, string] {
  if (Buffer.byteLength(path) <= 100) return ["", path];
  const cut = path.lastIndexOf("/", 155);
  const prefix = path.slice(0, cut);
  const name = path.slice(cut + 1);
  if (cut <= 0 || Buffer.byteLength(prefix) > 155 || Buffer.byteLength(name) > 100) {
    throw new HttpError(500, `Path too long for the workspace archive: ${path}`);
  }
  return [prefix, name];
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\u0000`;
}

function padding(size: number): number {
  return (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
}
