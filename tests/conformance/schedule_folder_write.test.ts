// Issue 20, point 8: creating, editing or enabling a schedule needs write access to its path, as
// Windmill's create_schedule, edit_schedule and set_enabled write under the caller's row-level
// security (windmill-api schedule.rs): a user outside the folder cannot create one in
// f/aws_oidc, but can in their own u/ space, and cannot change one there either.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startWindmill, type WindmillStandIn } from "../../local/windmill/server.ts";
import { REPO_ROOT } from "../helpers/testStack.ts";

let windmill: WindmillStandIn;
let eve: string;

async function createSchedule(token: string, path: string): Promise<Response> {
  return fetch(`${windmill.url}/api/w/${windmill.workspace}/schedules/create`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ path, schedule: "0 0 * * * *", timezone: "Etc/UTC", script_path: "f/aws_oidc/whoami", is_flow: false, args: {}, enabled: false }),
  });
}

beforeAll(async () => {
  windmill = await startWindmill({ workspaceDir: REPO_ROOT });
  const added = await fetch(`${windmill.url}/api/w/${windmill.workspace}/workspaces/add_user`, {
    method: "POST",
    headers: { authorization: `Bearer ${windmill.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ email: "eve@example.com", username: "eve", is_admin: false, operator: false }),
  });
  expect(added.ok).toBe(true);
  eve = windmill.createUserToken("eve");
});
afterAll(async () => {
  await windmill?.close();
});

describe("schedules/create checks write access to the schedule's path", () => {
  test("a user without folder write is refused with the row-level security error, and no schedule exists", async () => {
    const refused = await createSchedule(eve, "f/aws_oidc/eve_schedule");
    expect(refused.status).toBe(400);
    expect(await refused.text()).toBe('SqlErr: error returned from database: new row violates row-level security policy for table "schedule"');
    const exists = await fetch(`${windmill.url}/api/w/${windmill.workspace}/schedules/exists/f/aws_oidc/eve_schedule`, { headers: { authorization: `Bearer ${windmill.adminToken}` } });
    expect(await exists.json()).toBe(false);
  });

  test("the same user can create one under u/<self>/, and an admin anywhere", async () => {
    expect((await createSchedule(eve, "u/eve/own_schedule")).status).toBe(200);
    expect((await createSchedule(windmill.adminToken, "f/aws_oidc/admin_schedule")).status).toBe(200);
  });
});

describe("schedules/update and setenabled check write access too (schedule.rs edit_schedule, set_enabled)", () => {
  const path = "f/aws_oidc/admin_schedule";
  const call = (token: string, route: string, body: unknown) => fetch(`${windmill.url}/api/w/${windmill.workspace}/schedules/${route}/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const current = async () => (await (await fetch(`${windmill.url}/api/w/${windmill.workspace}/schedules/get/${path}`, { headers: { authorization: `Bearer ${windmill.adminToken}` } })).json()) as { schedule: string; enabled: boolean };

  test("an update by a user without write updates no row: 500 with Windmill's message, the schedule unchanged", async () => {
    const refused = await call(eve, "update", { schedule: "0 30 * * * *", timezone: "Etc/UTC", args: {} });
    expect(refused.status).toBe(500);
    expect(await refused.text()).toBe(`Internal: updating schedule in ${windmill.workspace}: no rows returned by a query that expected to return at least one row`);
    expect(await current()).toMatchObject({ schedule: "0 0 * * * *", enabled: false });
  });

  test("enabling it is 404 for that user, and it stays disabled; the admin may", async () => {
    const refused = await call(eve, "setenabled", { enabled: true });
    expect(refused.status).toBe(404);
    expect(await refused.text()).toBe(`Not found: Schedule not found at name ${path}`);
    expect((await current()).enabled).toBe(false);
    expect((await call(windmill.adminToken, "setenabled", { enabled: false })).status).toBe(200);
  });
});
