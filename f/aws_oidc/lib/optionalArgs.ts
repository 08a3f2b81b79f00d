// Optional `main` parameters that arrive as null.
//
// Windmill passes null for an argument that was not sent: API and webhook runs fill in no
// schema defaults, and a flow's `flow_input.x` for an input the caller left out evaluates to
// null, which the step receives (windmill-labs/windmill#5721). Windmill's Bun wrapper then
// calls `main` with that null, and a TypeScript default applies only to undefined. So each
// script hands its optional parameters here, with the same defaults as its signature (the
// signature's are what the run form shows; these are what a null falls back to).

type Nullable<T> = { [K in keyof T]: T[K] | null | undefined };

/** `given` with every null or undefined entry replaced by its default. */
export function withDefaults<T extends Record<string, unknown>>(given: Nullable<T>, defaults: NoInfer<T>): T {
  const filled = { ...defaults };
  for (const key of Object.keys(defaults) as (keyof T)[]) {
    const value = given[key];
    if (value !== null && value !== undefined) filled[key] = value;
  }
  return filled;
}
