// Two people on one machine: what the stand-ins keep in the temp dir between runs (the job
// package installs) is each user's own. A folder another user owns or could write to is
// refused with a Fix line and never used, so no one runs code someone else could have put there.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmod, chown, mkdir, mkdtemp, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkOwnedFolder, privateTempFolder, UnsafeFolderError } from "../../local/shared/ownedFolder.ts";
import { INSTALL_CACHE_NAME } from "../../local/windmill/bunInstall.ts";
import { BUNDLE_CACHE_NAME } from "../../local/windmill/worker.ts";
import { DEMO_ROLE_ARN, REGION, startStack, type Stack } from "../helpers/testStack.ts";

/** Another user's uid (nobody): only root can give a folder to it. */
const OTHER_UID = 65534;
const isRoot = process.getuid?.() === 0;
const uid = process.getuid?.() ?? 0;

const savedTmpdir = process.env.TMPDIR;
let root: string;

/** A fresh temp dir for this test, made the process's TMPDIR (os.tmpdir() reads it on each call). */
async function freshTmpdir(name: string, mode = 0o755): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir);
  await chmod(dir, mode);
  process.env.TMPDIR = dir;
  return dir;
}

async function refusal(run: Promise<unknown>): Promise<string> {
  const err = await run.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(UnsafeFolderError);
  return (err as Error).message;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "shared-machine-"));
  await chmod(root, 0o755);
});
afterAll(async () => {
  if (savedTmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmpdir;
  await rm(root, { recursive: true, force: true });
});

describe("a per-user folder in the temp dir", () => {
  test("is made as <name>-<uid>, private (0700) and owned by the user", async () => {
    const dir = await freshTmpdir("fresh");
    const folder = await privateTempFolder("cache");
    expect(folder).toBe(join(dir, `cache-${uid}`));
    const info = await stat(folder);
    expect([info.uid, info.mode & 0o777]).toEqual([uid, 0o700]);
    expect(await privateTempFolder("cache")).toBe(folder);
  });

  test("writable by others: refused with a Fix line", async () => {
    const dir = await freshTmpdir("writable");
    const folder = join(dir, `cache-${uid}`);
    await mkdir(folder);
    await chmod(folder, 0o777);
    const message = await refusal(privateTempFolder("cache"));
    expect(message).toContain(`${folder} can be written by users other than`);
    expect(message).toContain(`\nFix: remove it (rm -rf ${folder}`);
  });

  test.if(isRoot)("owned by another user: refused with a Fix line", async () => {
    const dir = await freshTmpdir("squatted");
    const folder = join(dir, `cache-${uid}`);
    await mkdir(folder, { mode: 0o700 });
    await chown(folder, OTHER_UID, OTHER_UID);
    const message = await refusal(privateTempFolder("cache"));
    expect(message).toContain(`${folder} belongs to uid ${OTHER_UID}, not to root who runs this`);
    expect(message).toContain("\nFix: remove it");
  });

  test("a symbolic link in its place: refused", async () => {
    const dir = await freshTmpdir("linked");
    await mkdir(join(dir, "elsewhere"), { mode: 0o700 });
    await symlink(join(dir, "elsewhere"), join(dir, `cache-${uid}`));
    expect(await refusal(privateTempFolder("cache"))).toContain("is not a folder (a symbolic link)");
  });

  test("in a folder others can write to: refused unless that folder is sticky (as /tmp is)", async () => {
    const open = await freshTmpdir("open", 0o777);
    const message = await refusal(privateTempFolder("cache"));
    expect(message).toContain(`sits in ${open}, which other users can write to without the sticky bit`);
    expect(message).toContain("\nFix: set TMPDIR to a folder of your own");
    await chmod(open, 0o1777);
    await expect(checkOwnedFolder(join(open, `cache-${uid}`), uid)).resolves.toBeUndefined();
  });
});

describe("the job package cache", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.close();
  });

  async function assumeRoleJob(): Promise<string> {
    const { result } = await stack.runScript("f/aws_oidc/assume_role", { role_arn: DEMO_ROLE_ARN, region: REGION });
    return (result as { error?: { message: string } }).error?.message ?? "";
  }

  test.each([
    ["the package cache", INSTALL_CACHE_NAME],
    ["the bundle cache", BUNDLE_CACHE_NAME],
  ])("%s writable by another user: the job fails with the Fix line, and nothing is put into it", async (_, name) => {
    const dir = await freshTmpdir(`${name}-writable`);
    const cache = join(dir, `${name}-${uid}`);
    await mkdir(cache);
    await chmod(cache, 0o777);
    const message = await assumeRoleJob();
    expect(message).toContain(`${cache} can be written by users other than`);
    expect(message).toContain(`\nFix: remove it (rm -rf ${cache}`);
    expect(await Array.fromAsync(new Bun.Glob("*").scan({ cwd: cache, onlyFiles: false }))).toEqual([]);
  });

  test.if(isRoot)("owned by another user: the job fails with the Fix line", async () => {
    const dir = await freshTmpdir("jobs-squatted");
    const cache = join(dir, `${INSTALL_CACHE_NAME}-${uid}`);
    await mkdir(cache, { mode: 0o700 });
    await chown(cache, OTHER_UID, OTHER_UID);
    const message = await assumeRoleJob();
    expect(message).toContain(`${cache} belongs to uid ${OTHER_UID}`);
    expect(message).toContain("\nFix: remove it");
  });
});
