// Folders the stand-ins keep between runs outside the clone (installed job packages, a copy of
// the Postgres binaries) hold code that later runs execute. On a machine several people share,
// the temp dir is everyone's: a folder another user made, or could write to, could hold code
// they wrote, which our next run (perhaps as root) would execute. So such a folder must be
// owned by the user the code runs as, writable by no one else, and reachable only through
// parents no other user can swap it out of; anything else is refused, never used.
import { lstat, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, parse, resolve } from "node:path";

/** An error whose message names the folder and what to do (the stack keeps its Fix line). */
export class UnsafeFolderError extends Error {
  constructor(problem: string, readonly fix: string) {
    super(`${problem}\nFix: ${fix}`);
  }
}

const GROUP_OR_WORLD_WRITABLE = 0o022;
/** The sticky bit: in a folder that has it (like /tmp), only an entry's owner may rename or delete it. */
const STICKY = 0o1000;

const describeOwner = (uid: number) => (uid === 0 ? "root" : `uid ${uid}`);

/**
 * Throws UnsafeFolderError unless `path` is a folder (not a link) owned by `owner` that neither
 * its group nor others can write to, and every parent is owned by root or `owner` and, when
 * others may write to it, sticky (so no one else can rename `path` away and put theirs there).
 */
export async function checkOwnedFolder(path: string, owner: number): Promise<void> {
  const info = await lstat(path);
  const remove = `remove it (rm -rf ${path}; as its owner or root if it is not yours) and run again`;
  if (!info.isDirectory()) {
    throw new UnsafeFolderError(`${path} is not a folder (${info.isSymbolicLink() ? "a symbolic link" : "a file"}), so what it holds cannot be trusted`, remove);
  }
  if (info.uid !== owner) {
    throw new UnsafeFolderError(`${path} belongs to ${describeOwner(info.uid)}, not to ${describeOwner(owner)} who runs this: another user could have put code in it that this run would execute`, remove);
  }
  if ((info.mode & GROUP_OR_WORLD_WRITABLE) !== 0) {
    throw new UnsafeFolderError(`${path} can be written by users other than ${describeOwner(owner)} (mode ${(info.mode & 0o7777).toString(8)}), so what it holds cannot be trusted`, remove);
  }
  for (let dir = dirname(resolve(path)); ; dir = dirname(dir)) {
    const parent = await lstat(dir);
    const ownedSafely = parent.uid === 0 || parent.uid === owner;
    const swappable = (parent.mode & GROUP_OR_WORLD_WRITABLE) !== 0 && (parent.mode & STICKY) === 0;
    if (!ownedSafely || swappable) {
      throw new UnsafeFolderError(
        `${path} sits in ${dir}, which ${ownedSafely ? "other users can write to without the sticky bit" : `belongs to ${describeOwner(parent.uid)}`}: they could replace ${path} with their own`,
        "set TMPDIR to a folder of your own (e.g. mkdir -m 700 ~/tmp && export TMPDIR=~/tmp) and run again",
      );
    }
    if (dir === parse(dir).root) return;
  }
}

/**
 * `<temp dir>/<name>-<uid>`: one per user, made private (0700) if absent, checked with
 * checkOwnedFolder every time. Where there are no uids (Windows), `<temp dir>/<name>`.
 */
export async function privateTempFolder(name: string): Promise<string> {
  const uid = process.getuid?.();
  if (uid === undefined) return join(tmpdir(), name);
  const path = join(tmpdir(), `${name}-${uid}`);
  // Not recursive: the temp dir itself is the user's or the system's, never made here.
  await mkdir(path, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST") throw err;
  });
  await checkOwnedFolder(path, uid);
  return path;
}
