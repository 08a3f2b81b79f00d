// Issue 12, fact 4 and the token facts: who a job acts as, and what Windmill's row-level
// security lets that user read and write. Each test names the Windmill source it checks.
// Users: alice (admin, pushed the bundle), root (admin, in no group), olga (g/aws_operators,
// which the folder ships with: write), bob (an operator in g/aws_readers: folder read only),
// eve (in no group but `all`: outside the folder).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import wmill from "windmill-client";
import { DEMO_ROLE_ARN, REGION, startStack, type JobResult, type Stack } from "../helpers/testStack.ts";

let stack: Stack;
const tokens: Record<string, string> = {};
const CREDS = "f/aws_oidc/aws_credentials";

async function api(token: string, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${stack.windmill.url}/api/w/${stack.windmill.workspace}/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function ok(res: Response | Promise<Response>): Promise<string> {
  const r = await res;
  const text = await r.text();
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${text}`);
  return text;
}

/** A script or flow run through its webhook as `user` (or with a raw token). */
async function run(user: string, kind: "p" | "f", path: string, args: Record<string, unknown>): Promise<{ status: number; result: JobResult }> {
  const res = await api(tokens[user] ?? user, "POST", `jobs/run_wait_result/${kind}/${path}`, args);
  return { status: res.status, result: await res.json() };
}

const assumeRole = (user: string, args: Record<string, unknown> = {}) =>
  run(user, "p", "f/aws_oidc/assume_role", { role_arn: DEMO_ROLE_ARN, region: REGION, ...args });

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.replace(/^jwt_/, "").split(".")[1], "base64url").toString());
}

beforeAll(async () => {
  stack = await startStack();
  const admin = stack.windmill.adminToken;
  tokens.alice = admin;
  for (const [username, is_admin, operator] of [["root", true, false], ["olga", false, false], ["bob", false, true], ["eve", false, false]] as const) {
    await ok(api(admin, "POST", "workspaces/add_user", { email: `${username}@example.com`, username, is_admin, operator }));
    tokens[username] = stack.windmill.createUserToken(username);
  }
  for (const [group, member] of [["aws_operators", "olga"], ["aws_readers", "bob"]]) {
    await ok(api(admin, "POST", "groups/create", { name: group }));
    await ok(api(admin, "POST", `groups/adduser/${group}`, { username: member }));
  }
  await ok(api(admin, "POST", "acls/add/folder/aws_oidc", { owner: "g/aws_readers", write: false }));
  const saved = await assumeRole("alice");
  expect(saved.status, JSON.stringify(saved.result)).toBe(200);
});
afterAll(async () => {
  await stack.close();
});

describe("folders and row-level security (backend/migrations RLS policies, resources.rs, variables.rs)", () => {
  test("the folder pushed from folder.meta.yaml names g/aws_operators; the pusher was added as owner (folders.rs create_folder)", async () => {
    const folder = JSON.parse(await ok(api(tokens.alice, "GET", "folders/get/aws_oidc")));
    expect(folder.owners).toEqual(["g/aws_operators", "u/alice"]);
    expect(folder.extra_perms).toEqual({ "g/aws_operators": true, "u/alice": true, "g/aws_readers": false });
  });

  test("whoami lists groups (all included) and folders read / written (users.rs whoami)", async () => {
    const bob = JSON.parse(await ok(api(tokens.bob, "GET", "users/whoami")));
    expect(bob).toMatchObject({ username: "bob", is_admin: false, operator: true, groups: ["all", "aws_readers"], folders_read: ["aws_oidc"], folders: [] });
    const olga = JSON.parse(await ok(api(tokens.olga, "GET", "users/whoami")));
    expect(olga).toMatchObject({ groups: ["all", "aws_operators"], folders: ["aws_oidc"], folders_owners: ["aws_oidc"] });
  });

  test("create without write: 400 RLS violation for table resource / variable (see_folder_extra_perms_user_insert)", async () => {
    for (const user of ["bob", "eve"]) {
      const res = await api(tokens[user], "POST", "resources/create", { path: "f/aws_oidc/by_" + user, value: {}, resource_type: "aws_oidc" });
      expect(res.status).toBe(400);
      expect(await res.text()).toBe('SqlErr: error returned from database: new row violates row-level security policy for table "resource"');
      const v = await api(tokens[user], "POST", "variables/create", { path: "f/aws_oidc/var_by_" + user, value: "x", is_secret: true });
      expect(v.status).toBe(400);
      expect(await v.text()).toBe('SqlErr: error returned from database: new row violates row-level security policy for table "variable"');
    }
    expect((await api(tokens.olga, "POST", "variables/create", { path: "f/aws_oidc/var_by_olga", value: "x", is_secret: false })).status).toBe(201);
  });

  test("update_value without write answers 200 and changes nothing (resources.rs update_resource_value does not count rows)", async () => {
    await ok(api(tokens.olga, "POST", "resources/create", { path: "f/aws_oidc/role_copy", value: { roleArn: "a", region: REGION }, resource_type: "aws_oidc" }));
    for (const user of ["bob", "eve"]) {
      const res = await api(tokens[user], "POST", "resources/update_value/f/aws_oidc/role_copy", { value: { roleArn: user, region: REGION } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("value of resource f/aws_oidc/role_copy updated");
    }
    expect(JSON.parse(await ok(api(tokens.alice, "GET", "resources/get_value/f/aws_oidc/role_copy")))).toEqual({ roleArn: "a", region: REGION });
    await ok(api(tokens.olga, "POST", "resources/update_value/f/aws_oidc/role_copy", { value: { roleArn: "b", region: REGION } }));
    expect(JSON.parse(await ok(api(tokens.bob, "GET", "resources/get_value/f/aws_oidc/role_copy")))).toEqual({ roleArn: "b", region: REGION });
  });

  test("reads: a folder reader reads; an outsider gets 401 explain_resource_perm_error, or 404 when absent; exists ignores permissions", async () => {
    expect((await api(tokens.bob, "GET", `resources/get_value_interpolated/${CREDS}`)).status).toBe(200);
    const refused = await api(tokens.eve, "GET", `resources/get_value_interpolated/${CREDS}`);
    expect(refused.status).toBe(401);
    const text = await refused.text();
    expect(text).toStartWith("Not authorized: Resource exists but you don't have access to it:\nresource perms: {}\nfolder perms: {");
    expect(text).toContain('authed as: ApiAuthed { email: "eve@example.com", username: "eve", is_admin: false');
    const absent = await api(tokens.eve, "GET", "resources/get_value_interpolated/f/aws_oidc/nothing_here");
    expect(absent.status).toBe(404);
    expect(await absent.text()).toBe("Not found: Resource f/aws_oidc/nothing_here not found");
    // resources.rs exists_resource queries the plain db: the brief expected false here, the source says true.
    expect(JSON.parse(await ok(api(tokens.eve, "GET", `resources/exists/${CREDS}`)))).toBe(true);
    const variable = await api(tokens.eve, "GET", "variables/get_value/f/aws_oidc/var_by_olga");
    expect(variable.status).toBe(401);
    expect(await variable.text()).toStartWith("Not authorized: Variable exists but you don't have access to it:");
    const listed = JSON.parse(await ok(api(tokens.eve, "GET", "variables/list?path_start=f/aws_oidc/")));
    expect(listed).toEqual([]);
  });

  test("an item's own extra_perms grant read (false) or write (true) (see_extra_perms_user_*, granular_acls.rs)", async () => {
    await ok(api(tokens.olga, "POST", "resources/create", { path: "f/aws_oidc/shared_role", value: { roleArn: "s", region: REGION }, resource_type: "aws_oidc" }));
    expect((await api(tokens.eve, "GET", "resources/get_value/f/aws_oidc/shared_role")).status).toBe(401);
    await ok(api(tokens.olga, "POST", "acls/add/resource/f/aws_oidc/shared_role", { owner: "u/eve", write: false }));
    expect((await api(tokens.eve, "GET", "resources/get_value/f/aws_oidc/shared_role")).status).toBe(200);
    await api(tokens.eve, "POST", "resources/update_value/f/aws_oidc/shared_role", { value: { roleArn: "eve", region: REGION } });
    expect(JSON.parse(await ok(api(tokens.alice, "GET", "resources/get_value/f/aws_oidc/shared_role"))).roleArn).toBe("s");
    await ok(api(tokens.olga, "POST", "acls/add/resource/f/aws_oidc/shared_role", { owner: "u/eve", write: true }));
    await ok(api(tokens.eve, "POST", "resources/update_value/f/aws_oidc/shared_role", { value: { roleArn: "eve", region: REGION } }));
    expect(JSON.parse(await ok(api(tokens.alice, "GET", "resources/get_value/f/aws_oidc/shared_role"))).roleArn).toBe("eve");
  });

  test("a folder update by a non-owner is refused (folders.rs update_folder)", async () => {
    const res = await api(tokens.bob, "POST", "folders/update/aws_oidc", { extra_perms: { "g/aws_readers": true } });
    expect(res.status).toBe(401);
    expect(await res.text()).toBe("Not authorized: You are not an owner of aws_oidc and hence cannot modify it");
  });
});

describe("the bundle under folder permissions (f/aws_oidc/lib/credentialsResource.ts)", () => {
  test("a folder reader's assume_role is refused with the path, the user and the folder permission to grant", async () => {
    const refused = await assumeRole("bob", { force: true });
    expect(refused.status).toBe(422);
    expect(refused.result.error.message).toBe(
      "u/bob cannot write f/aws_oidc/aws_credentials: give u/bob, or a group u/bob is in, write access to folder aws_oidc " +
        "(extra_perms in f/aws_oidc/folder.meta.yaml: true writes), or set save_to to a path under u/bob/",
    );
    // The STS call happened; nothing was saved, and the saved session is still alice's.
    const leftovers = JSON.parse(await ok(api(tokens.alice, "GET", `variables/list?path_start=${CREDS}__`))) as { path: string }[];
    expect(leftovers.length).toBe(2);
  });

  test("the folder reader still uses the saved credentials (a `$res:` argument, resolved as bob)", async () => {
    const used = await run("bob", "p", "f/aws_oidc/whoami", { credentials: `$res:${CREDS}` });
    expect(used.status, JSON.stringify(used.result)).toBe(200);
    expect(used.result.id_token_claims.email).toBe("bob@example.com");
  });

  test("a save under another user's u/ is refused with that user's rule (see_own)", async () => {
    const refused = await assumeRole("olga", { save_to: "u/bob/from_olga" });
    expect(refused.status).toBe(422);
    expect(refused.result.error.message).toBe(
      "u/olga cannot write u/bob/from_olga: only u/bob and workspace admins can write under u/bob/, or set save_to to a path under u/olga/",
    );
  });

  test("an admin in no group bypasses folder permissions (admin_policy TO windmill_admin USING (true))", async () => {
    const saved = await assumeRole("root", { save_to: "f/aws_oidc/creds_root" });
    expect(saved.status, JSON.stringify(saved.result)).toBe(200);
    expect((await run("root", "p", "f/aws_oidc/whoami", { credentials: "$res:f/aws_oidc/creds_root" })).status).toBe(200);
  });

  test("save_to under u/<user>/ works for a non-admin, and only that user (and admins) can read it (see_own)", async () => {
    const saved = await assumeRole("bob", { save_to: "u/bob/aws_credentials" });
    expect(saved.status, JSON.stringify(saved.result)).toBe(200);
    expect((await run("bob", "p", "f/aws_oidc/whoami", { credentials: "$res:u/bob/aws_credentials" })).status).toBe(200);
    // olga may run the folder's scripts but not read under u/bob/ (eve cannot even run them: 401 below).
    const refused = await run("olga", "p", "f/aws_oidc/s3_list_objects", { credentials: "u/bob/aws_credentials", bucket: "any" });
    expect(refused.status).toBe(422);
    expect(refused.result.error.message).toStartWith("u/olga cannot read u/bob/aws_credentials: only u/bob and workspace admins can read under u/bob/");
    expect((await api(tokens.root, "GET", "resources/get_value_interpolated/u/bob/aws_credentials")).status).toBe(200);
  });
});

describe("who a job runs as (jobs.rs, worker_flow.rs, windmill-queue schedule.rs, auth.rs)", () => {
  const IDENTITY_FLOW = "f/aws_oidc/identity_probe";
  const identityStep = `export async function main() {
  const claims = JSON.parse(Buffer.from(process.env.WM_TOKEN!.replace(/^jwt_/, "").split(".")[1], "base64url").toString());
  const env = process.env;
  return {
    username: env.WM_USERNAME, email: env.WM_EMAIL, token_username: claims.username, groups: claims.groups, permissioned_as: env.WM_PERMISSIONED_AS,
    scheduled_for: env.WM_SCHEDULED_FOR, state_path: env.WM_STATE_PATH, object_path: env.WM_OBJECT_PATH,
  };
}`;

  beforeAll(async () => {
    await ok(api(tokens.alice, "POST", "flows/create", {
      path: IDENTITY_FLOW, summary: "who runs me", schema: { type: "object", properties: {}, required: [] },
      value: { modules: [
        { id: "who", value: { type: "rawscript", language: "bun", content: identityStep, input_transforms: {} } },
        { id: "save", value: { type: "script", path: "f/aws_oidc/assume_role", input_transforms: {
          role_arn: { type: "static", value: DEMO_ROLE_ARN }, region: { type: "static", value: REGION },
          save_to: { type: "static", value: "f/aws_oidc/creds_flow" }, force: { type: "static", value: true },
        } } },
        { id: "result", value: { type: "identity" } },
      ] },
    }));
  });

  async function scopedToken(owner: string): Promise<string> {
    return fetch(`${stack.windmill.url}/api/users/tokens/create`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokens[owner]}`, "content-type": "application/json" },
      body: JSON.stringify({ label: "webhook", scopes: [`jobs:run:flows:${IDENTITY_FLOW}`] }),
    }).then((r) => r.text());
  }

  test("a flow started with a scoped webhook token runs, steps included, as the token's owner", async () => {
    const before = stack.windmill.jobs.length;
    const ran = await run(await scopedToken("olga"), "f", IDENTITY_FLOW, {});
    expect(ran.status, JSON.stringify(ran.result)).toBe(200);
    const jobs = stack.jobsStartedSince(before);
    expect(jobs.length).toBeGreaterThanOrEqual(3);
    expect(new Set(jobs.map((j) => `${j.username} ${j.email}`))).toEqual(new Set(["olga olga@example.com"]));
    const who = jobs.find((j) => j.stepId === "who")?.result as Record<string, string>;
    expect(who).toMatchObject({
      username: "olga", email: "olga@example.com", token_username: "olga", groups: ["all", "aws_operators"], permissioned_as: "u/olga",
      state_path: `${IDENTITY_FLOW}/who_user`,
    });
    expect(who.object_path).toStartWith("f_aws_oidc_identity_probe/manual/who/");
    // The same flow through bob's webhook token fails in its save step with bob's refusal.
    const refused = await run(await scopedToken("bob"), "f", IDENTITY_FLOW, {});
    expect(refused.status).toBe(422);
    expect(JSON.stringify(refused.result)).toContain("u/bob cannot write f/aws_oidc/creds_flow");
  });

  test("a schedule runs as its last editor (schedule.edited_by), with the schedule's email", async () => {
    const path = "f/aws_oidc/identity_every_second";
    await ok(api(tokens.olga, "POST", "schedules/create", {
      path, schedule: "* * * * * *", timezone: "Etc/UTC", script_path: IDENTITY_FLOW, is_flow: true, enabled: true, no_flow_overlap: true,
    }));
    const runsBy = (user: string) => stack.windmill.jobs.filter((j) => j.schedulePath === path && j.parentJobId === null && j.username === user && j.status !== "running");
    const deadline = Date.now() + 20_000;
    while (runsBy("olga").length < 1 && Date.now() < deadline) await Bun.sleep(200);
    const olgaRun = runsBy("olga")[0];
    expect(olgaRun?.success).toBe(true);
    // windmill-queue schedule.rs push_scheduled_job + windmill-common variables.rs get_reserved_variables.
    const created = "schedule-f-aws_oidc-identity_every_second";
    expect(olgaRun.createdBy).toBe(created);
    const shown = JSON.parse(await ok(api(tokens.alice, "GET", `jobs_u/get/${olgaRun.id}`)));
    expect(shown).toMatchObject({ created_by: created, permissioned_as: "u/olga", email: "olga@example.com", schedule_path: path });
    const who = stack.windmill.jobs.find((j) => j.parentJobId === olgaRun.id && j.stepId === "who")?.result as Record<string, string>;
    expect(who).toMatchObject({
      username: created, email: "olga@example.com", token_username: "olga", permissioned_as: "u/olga",
      state_path: `${IDENTITY_FLOW}/who_${created}`,
    });
    expect(who.scheduled_for).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(who.object_path).toStartWith("f_aws_oidc_identity_probe/f_aws_oidc_identity_every_second/who/");
    const current = JSON.parse(await ok(api(tokens.alice, "GET", `schedules/get/${path}`)));
    await ok(api(tokens.alice, "POST", `schedules/update/${path}`, { schedule: current.schedule, timezone: current.timezone, args: {} }));
    while (runsBy("alice").length < 1 && Date.now() < deadline + 20_000) await Bun.sleep(200);
    await ok(api(tokens.alice, "POST", `schedules/setenabled/${path}`, { enabled: false }));
    const byAlice = runsBy("alice")[0];
    expect(byAlice?.success).toBe(true);
    expect(byAlice?.email).toBe("olga@example.com");
  }, 60_000);

  test("job tokens and OIDC ID tokens carry the user's email, username and groups (auth.rs JWTAuthClaims)", async () => {
    stack.actAsJob("f/aws_oidc/assume_role");
    const token = stack.windmill.createJobToken({ path: "f/aws_oidc/assume_role", username: "olga" });
    expect(token).toStartWith("jwt_");
    expect(claimsOf(token)).toMatchObject({ username: "olga", email: "olga@example.com", is_admin: false, is_operator: false, groups: ["all", "aws_operators"], folders: [["aws_oidc", true, true]] });
    wmill.setClient(token, stack.windmill.url);
    const idToken = await wmill.getIdToken("sts.amazonaws.com");
    expect(claimsOf(idToken)).toMatchObject({ email: "olga@example.com", username: "olga", groups: ["all", "aws_operators"] });
    wmill.setClient(stack.windmill.adminToken, stack.windmill.url);
  });
});

describe("get_result_maybe (jobs.rs get_completed_job_result_maybe)", () => {
  test("without a token only anonymous users' jobs are shown; with one, {started, success, completed, result} in that order", async () => {
    const id = await ok(api(tokens.alice, "POST", "jobs/run/p/f/aws_oidc/trust_policy", {
      account_id: "123456789012", windmill_base_url: stack.windmill.url, workspace: stack.windmill.workspace,
    }));
    const url = `${stack.windmill.url}/api/w/${stack.windmill.workspace}/jobs_u/completed/get_result_maybe/${id}`;
    let body: Record<string, unknown> = {};
    for (let i = 0; i < 100 && body.completed !== true; i++) {
      body = await (await fetch(url, { headers: { authorization: `Bearer ${tokens.alice}` } })).json();
      if (body.completed !== true) await Bun.sleep(100);
    }
    expect(Object.keys(body)).toEqual(["started", "success", "completed", "result"]);
    expect(body.started).toBe(true);
    const anonymous = await fetch(url);
    expect(anonymous.status).toBe(400);
    expect(await anonymous.text()).toBe("Bad request: As a non logged in user, you can only see jobs ran by anonymous users");
  });
});

describe("running what the caller cannot read (windmill-common lib.rs get_latest_deployed_hash_for_path, get_latest_flow_version_id_for_path)", () => {
  test("a user outside the folder is refused at the API with 401 for a script or a flow, and no job exists", async () => {
    const before = stack.windmill.jobs.length;
    const script = await api(tokens.eve, "POST", "jobs/run_wait_result/p/f/aws_oidc/s3_list_objects", { credentials: CREDS, bucket: "any" });
    expect(script.status).toBe(401);
    expect(await script.text()).toStartWith(
      'Not authorized: You are not authorized to access this script: f/aws_oidc/s3_list_objects (but it exists). Your permissions are: ApiAuthed { email: "eve@example.com", username: "eve", is_admin: false',
    );
    expect((await api(tokens.eve, "POST", "jobs/run/p/f/aws_oidc/assume_role", {})).status).toBe(401);
    const flow = await api(tokens.eve, "POST", "jobs/run/f/f/aws_oidc/identity_probe", {});
    expect(flow.status).toBe(401);
    expect(await flow.text()).toStartWith("Not authorized: You are not authorized to access this flow: f/aws_oidc/identity_probe (but it exists).");
    expect(stack.windmill.jobs.length).toBe(before);
  });

  test("a path that does not exist is 404 (not_found_if_none), whoever asks", async () => {
    const res = await api(tokens.eve, "POST", "jobs/run/p/f/aws_oidc/no_such_script", {});
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("Not found: script not found at name f/aws_oidc/no_such_script");
  });

  test("a permission error in a scheduled run names the schedule's editor (u/<edited_by>), not its creator schedule-<path>", async () => {
    await ok(api(tokens.alice, "POST", "workspaces/add_user", { email: "rita@example.com", username: "rita", is_admin: false, operator: false }));
    await ok(api(tokens.alice, "POST", "groups/adduser/aws_readers", { username: "rita" }));
    tokens.rita = stack.windmill.createUserToken("rita");
    const path = "u/rita/assume_every_second";
    await ok(api(tokens.rita, "POST", "schedules/create", {
      path, schedule: "* * * * * *", timezone: "Etc/UTC", script_path: "f/aws_oidc/assume_role", is_flow: false, enabled: true, no_flow_overlap: true,
      args: { role_arn: DEMO_ROLE_ARN, region: REGION, force: true },
    }));
    const done = () => stack.windmill.jobs.find((j) => j.schedulePath === path && j.status !== "running");
    const deadline = Date.now() + 30_000;
    while (!done() && Date.now() < deadline) await Bun.sleep(200);
    await ok(api(tokens.alice, "POST", `schedules/setenabled/${path}`, { enabled: false }));
    const job = done();
    expect(job?.createdBy).toBe("schedule-u-rita-assume_every_second");
    expect((job?.result as JobResult).error.message).toStartWith("u/rita cannot write f/aws_oidc/aws_credentials: give u/rita, or a group u/rita is in, write access");
  }, 60_000);
});
