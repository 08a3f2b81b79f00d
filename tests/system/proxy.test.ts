// Behind a company proxy (HTTP_PROXY / HTTPS_PROXY set, often no NO_PROXY), every call to the
// loopback stand-ins still goes straight to them: from the stack's own process, the wmill CLI,
// each job (windmill-client, the AWS SDK) and the demo as a whole.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { s3Client } from "../../f/aws_oidc/lib/s3.ts";
import { startSts } from "../../local/sts/server.ts";
import { startWindmill } from "../../local/windmill/server.ts";
import { behindProxyEnv, startRecordingProxy, type RecordingProxy } from "../helpers/proxy.ts";
import { DEMO_ROLE_ARN, REGION, REPO_ROOT, startStack, type Stack } from "../helpers/testStack.ts";

const PROXY_VARIABLES = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"] as const;

let proxy: RecordingProxy;
const saved = new Map<string, string | undefined>();

/** This process's env and its children's as the user's behind the proxy. */
const userEnv = () => behindProxyEnv(process.env, proxy.url);

beforeAll(async () => {
  proxy = await startRecordingProxy();
  for (const name of PROXY_VARIABLES) {
    saved.set(name, process.env[name]);
    delete process.env[name];
  }
  Object.assign(process.env, userEnv());
});

afterAll(async () => {
  for (const [name, value] of saved) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await proxy.close();
});

/** Drops the NO_PROXY a stand-in's start added to this process, so what follows starts from the user's env. */
function forgetBypass(): void {
  delete process.env.NO_PROXY;
  delete process.env.no_proxy;
}

describe("with HTTP_PROXY and HTTPS_PROXY set and no NO_PROXY", () => {
  beforeEach(forgetBypass);

  // npm run metadata starts the Windmill stand-in alone, and tests start single stand-ins.
  test("a stand-in started on its own is reached directly by the process that started it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "proxy-alone-"));
    try {
      // Each checked right after its own start, before another stand-in's start could set NO_PROXY.
      const windmill = await startWindmill({ workspaceDir: dir });
      try {
        const answers = [await fetch(`${windmill.url}/api/version`), await fetch(`${windmill.url}/api/oidc/jwks`)];
        expect(answers.map((r) => r.status)).toEqual([200, 200]);
      } finally {
        await windmill.close();
      }
      forgetBypass();
      const configPath = join(dir, "sts.json");
      await writeFile(configPath, JSON.stringify({ accountId: "123456789012", oidcProviders: [], roles: [], managedPolicies: [] }));
      const sts = await startSts({ configPath });
      try {
        // Unsigned, so STS itself refuses it: an answer from STS, not the proxy's 502.
        expect(await (await fetch(`${sts.url}/?Action=GetCallerIdentity&Version=2011-06-15`)).text()).toContain("<ErrorResponse");
      } finally {
        await sts.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(proxy.loopbackRequests()).toEqual([]);
  });

  test("the stack starts, and jobs reach Windmill, STS and S3 directly", async () => {
    let stack: Stack | undefined;
    try {
      stack = await startStack({ s3: true });
      const creds = "f/aws_oidc/proxy_creds";
      const assumed = await stack.runScript("f/aws_oidc/assume_role", { role_arn: DEMO_ROLE_ARN, region: REGION, save_to: creds });
      expect({ status: assumed.status, sts_calls: assumed.result.sts_calls }).toEqual({ status: 200, sts_calls: 1 });
      // The AWS SDK in this process too, as the tests use it.
      stack.actAsJob("f/aws_oidc/proxy_test");
      await (await s3Client(creds)).s3.send(new CreateBucketCommand({ Bucket: "proxied" }));
      const put = await stack.runScript("f/aws_oidc/s3_put_object", { credentials: `$res:${creds}`, bucket: "proxied", key: "a.txt", content: "direct" });
      const listed = await stack.runScript("f/aws_oidc/s3_list_objects", { credentials: `$res:${creds}`, bucket: "proxied" });
      expect([put.status, listed.status]).toEqual([200, 200]);
      expect(listed.result.map((o: { key: string }) => o.key)).toEqual(["a.txt"]);
    } finally {
      await stack?.close();
    }
    expect(proxy.loopbackRequests()).toEqual([]);
  });

  test("npm run dev's line to paste sets NO_PROXY too, so curl reaches the stand-ins", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "proxy-dev-state-"));
    const dev = spawn(process.execPath, ["local/demo/demo.ts", "dev", "--state-dir", stateDir], {
      cwd: REPO_ROOT, env: userEnv(), stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      let output = "";
      const line = await new Promise<string>((resolve, reject) => {
        dev.stdout!.on("data", (d: Buffer) => {
          output += d.toString("utf8");
          const found = /^export WM=.*$/m.exec(output)?.[0];
          if (found) resolve(found);
        });
        dev.once("exit", () => reject(new Error(`npm run dev exited before printing its line:\n${output}`)));
      });
      // As the user's shell behind the proxy runs it: the proxy set, NO_PROXY only from the line.
      const curl = spawn("bash", ["-c", `${line}\ncurl -s --fail-with-body "$WM/api/version"`], { env: userEnv() });
      let answer = "";
      curl.stdout!.on("data", (d: Buffer) => (answer += d.toString("utf8")));
      const code = await new Promise<number | null>((resolve) => curl.once("exit", resolve));
      expect({ code, answer }).toEqual({ code: 0, answer: expect.stringMatching(/^v1\./) });
    } finally {
      if (dev.exitCode === null && dev.signalCode === null) {
        const exited = new Promise((resolve) => dev.once("exit", resolve));
        dev.kill("SIGTERM");
        await exited;
      }
      await rm(stateDir, { recursive: true, force: true });
    }
    expect(proxy.loopbackRequests()).toEqual([]);
  }, 180_000);

  test("npm run demo passes", async () => {
    const demo = spawn(process.execPath, ["local/demo/demo.ts", "demo"], { cwd: REPO_ROOT, env: userEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    demo.stdout!.on("data", (d: Buffer) => (output += d.toString("utf8")));
    demo.stderr!.on("data", (d: Buffer) => (output += d.toString("utf8")));
    const code = await new Promise<number | null>((resolve) => demo.once("exit", resolve));
    expect({ code, tail: output.split("\n").slice(-5).join("\n") }).toMatchObject({ code: 0 });
    expect(output).toMatch(/Loaded (\d+) of \1 rows/);
    expect(proxy.loopbackRequests()).toEqual([]);
  }, 180_000);
});
