// Starts the stand-ins together, wired as a real setup is: STS trusts the Windmill
// issuer as an IAM OIDC provider, and jobs reach STS through AWS_ENDPOINT_URL_STS (the
// SDK's standard endpoint override), so the bundle's code runs unchanged.
// Used by the tests, `npm run dev` and `npm run demo`.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startRds, type RdsStandIn } from "./rds/server.ts";
import { startS3, type KmsKeyConfig, type S3StandIn } from "./s3/server.ts";
import type { PolicyDocument, RoleConfig, StsConfig } from "./sts/config.ts";
import { startSts, type StsStandIn } from "./sts/server.ts";
import { startWindmill, type WindmillStandIn } from "./windmill/server.ts";
import { pushWorkspace } from "./windmill/wmillCli.ts";

export const REPO_ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
/** A made-up account: the stand-ins never talk to AWS. */
export const ACCOUNT_ID = "123456789012";
export const DEMO_ROLE = "windmill-demo";
export const DEMO_ROLE_ARN = `arn:aws:iam::${ACCOUNT_ID}:role/${DEMO_ROLE}`;
export const REGION = "us-east-1";
export const AUDIENCE = "sts.amazonaws.com";
/** The stand-in database's DbiResourceId, as IAM policies name it. */
export const DBI_RESOURCE_ID = "db-LOCALSTANDIN0000000000000";
/** The stack's customer managed KMS key for SSE-KMS, and its alias (the AWS managed key aws/s3 exists besides). */
export const DEMO_KMS_KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
export const DEMO_KMS_KEYS: KmsKeyConfig[] = [{ arn: DEMO_KMS_KEY_ARN, aliases: ["alias/demo-data"] }];
/** The IAM-auth database user the demo role may connect as (`rds-db:connect`). */
export const DB_USER = "app_user";

export interface LocalStack {
  windmill: WindmillStandIn;
  sts: StsStandIn;
  /** Present when started with `{ s3: true }`. */
  s3?: S3StandIn;
  /** Present when started with `{ rds: true }`. */
  rds?: RdsStandIn;
  /** The env every job gets on top of Windmill's: region and the stand-ins' endpoints. */
  jobEnv: Record<string, string>;
  configPath: string;
  /** The provider as IAM writes it in ARNs and condition keys: `127.0.0.1:PORT/api/oidc/`. */
  provider: string;
  config(): Promise<StsConfig>;
  writeConfig(config: StsConfig): Promise<void>;
  /** Adds (or replaces) a role in the STS config; returns its ARN. */
  addRole(role: RoleConfig): Promise<string>;
  close(): Promise<void>;
}

/** The trust policy Windmill's docs recommend: exact audience, `sub` pinned by StringLike. */
export function trustPolicy(provider: string, accountId: string, sub: string, aud = AUDIENCE): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [{
      Effect: "Allow",
      Action: "sts:AssumeRoleWithWebIdentity",
      Principal: { Federated: `arn:aws:iam::${accountId}:oidc-provider/${provider}` },
      Condition: { StringEquals: { [`${provider}:aud`]: aud }, StringLike: { [`${provider}:sub`]: sub } },
    }],
  };
}

export type StandInName = "windmill" | "sts" | "s3" | "rds";

export interface StackOptions {
  workspaceDir?: string;
  s3?: boolean;
  rds?: boolean;
  /** Where the Windmill stand-in keeps the tokens users create, across restarts (`npm run dev`). */
  savedTokensFile?: string;
  /** Fixed ports (e.g. for `npm run dev`); a stand-in left out picks a free one. */
  ports?: Partial<Record<StandInName, number>>;
}

const STAND_IN_TITLES: Record<StandInName | "push", string> = {
  windmill: "Windmill stand-in",
  sts: "STS stand-in",
  s3: "S3 stand-in",
  rds: "RDS stand-in",
  push: "wmill sync push (deploying the repo into the Windmill stand-in)",
};

/** A stand-in that did not start: which one, why, and what to do about it. */
export class StandInStartError extends Error {
  constructor(readonly standIn: StandInName | "push", cause: unknown, ports: StackOptions["ports"] = {}) {
    super(`${STAND_IN_TITLES[standIn]} failed to start: ${causeAndFix(standIn, cause, ports)}`, { cause });
  }
}

function causeAndFix(standIn: StandInName | "push", cause: unknown, ports: StackOptions["ports"] = {}): string {
  const err = cause as NodeJS.ErrnoException & { fix?: string };
  const message = err instanceof Error ? err.message : String(cause);
  // An error that already says what to fix (the Postgres set-up's, s3rver's) keeps its own Fix line.
  if (typeof err.fix === "string" || message.includes("\nFix: ")) return message;
  const port = standIn === "push" ? undefined : ports[standIn];
  if (err.code === "EADDRINUSE" || /address already in use|EADDRINUSE/i.test(message)) {
    return `${message}\nFix: port ${port ?? "(the one asked for)"} is taken; stop what listens on it (\`ss -ltnp | grep ${port ?? "PORT"}\`) or choose another port`;
  }
  if (standIn === "push") return `${message}\nFix: run \`npm ci\` so node_modules/.bin/wmill exists, and check the wmill output above`;
  return `${message}\nFix: run \`npm ci\` to restore the stand-ins' packages; the error above names the file or port at fault`;
}

/** The demo role may do anything in S3, use the account's KMS keys for SSE-KMS, and connect to the database as DB_USER. */
function demoPermissions(dbiResourceId: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Action: ["s3:*", "sts:AssumeRole"], Resource: "*" },
      { Effect: "Allow", Action: ["kms:GenerateDataKey", "kms:Decrypt"], Resource: `arn:aws:kms:${REGION}:${ACCOUNT_ID}:key/*` },
      { Effect: "Allow", Action: "rds-db:connect", Resource: `arn:aws:rds-db:${REGION}:${ACCOUNT_ID}:dbuser:${dbiResourceId}/${DB_USER}` },
    ],
  };
}

export async function startLocalStack(options: StackOptions = {}): Promise<LocalStack> {
  const dir = await mkdtemp(join(tmpdir(), "aws-oidc-local-"));
  // Closed in reverse order if a later stand-in fails, so a failed start leaves nothing running.
  const started: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })];
  const start = async <T extends { close(): Promise<void> }>(name: StandInName | "push", run: () => Promise<T>): Promise<T> => {
    try {
      const standIn = await run();
      started.unshift(() => standIn.close());
      return standIn;
    } catch (err) {
      for (const close of started) await close().catch(() => {});
      throw new StandInStartError(name, err, options.ports);
    }
  };
  const ports = options.ports ?? {};
  const jobEnv: Record<string, string> = { AWS_REGION: REGION };
  const windmill = await start("windmill", () => startWindmill({
    workspaceDir: options.workspaceDir ?? REPO_ROOT, jobEnv, port: ports.windmill, savedTokensFile: options.savedTokensFile,
  }));
  const provider = windmill.issuer.replace(/^https?:\/\//, "");
  const configPath = join(dir, "sts.json");
  const config = async () => JSON.parse(await readFile(configPath, "utf8")) as StsConfig;
  const writeConfig = (c: StsConfig) => writeFile(configPath, JSON.stringify(c, null, 2));
  await writeConfig({
    accountId: ACCOUNT_ID,
    oidcProviders: [{ url: windmill.issuer, clientIdList: [AUDIENCE] }],
    roles: [{
      roleName: DEMO_ROLE,
      maxSessionDuration: 43_200,
      assumeRolePolicyDocument: trustPolicy(provider, ACCOUNT_ID, `*::*::*::${windmill.workspace}`),
      permissionPolicies: [demoPermissions(DBI_RESOURCE_ID)],
    }],
    managedPolicies: [{
      arn: `arn:aws:iam::${ACCOUNT_ID}:policy/read-only`,
      document: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:Get*", Resource: "*" }] },
    }],
  });
  const sts = await start("sts", () => startSts({ configPath, port: ports.sts }));
  jobEnv.AWS_ENDPOINT_URL_STS = sts.url;
  const s3 = options.s3 ? await start("s3", () => startS3({ stsUrl: sts.url, region: REGION, port: ports.s3, kmsKeys: DEMO_KMS_KEYS })) : undefined;
  if (s3) jobEnv.AWS_ENDPOINT_URL_S3 = s3.url;
  const rds = options.rds
    ? await start("rds", async () => {
      const instance = await startRds({ stsUrl: sts.url, region: REGION, dbiResourceId: DBI_RESOURCE_ID, port: ports.rds });
      await instance.adminSql(`create user ${DB_USER}; grant rds_iam to ${DB_USER}`).catch(async (err: unknown) => {
        await instance.close();
        throw err;
      });
      return instance;
    })
    : undefined;
  // The real CLI deploys the repo, as people deploy it to their instance.
  await start("push", async () => {
    await pushWorkspace(options.workspaceDir ?? REPO_ROOT, { url: windmill.url, workspace: windmill.workspace, token: windmill.adminToken });
    return { close: async () => {} };
  });
  // Once: a signal's close and the demo's own `finally` may both ask for it.
  let closing: Promise<void> | undefined;
  const closeAll = async () => {
    for (const close of started) await close();
  };
  return {
    windmill, sts, s3, rds, jobEnv, configPath, provider, config, writeConfig,
    async addRole(role) {
      const c = await config();
      c.roles = [...c.roles.filter((r) => r.roleName !== role.roleName), role];
      await writeConfig(c);
      return `arn:aws:iam::${c.accountId}:role/${role.roleName}`;
    },
    close() {
      closing ??= closeAll();
      return closing;
    },
  };
}
