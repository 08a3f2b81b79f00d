// The STS stand-in's limits and fixed values, taken from the AWS STS API reference and the
// IAM quotas, each with why it is what it is.

export const STS_API_VERSION = "2011-06-15";
export const STS_XMLNS = `https://sts.amazonaws.com/doc/${STS_API_VERSION}/`;
/** Shortest session any AssumeRole* call may ask for. */
export const MIN_DURATION_SECONDS = 900;
/** Longest session: the highest MaxSessionDuration IAM lets a role have (12 h). */
export const MAX_DURATION_SECONDS = 43_200;
/** What STS grants when the call names no DurationSeconds. */
export const DEFAULT_DURATION_SECONDS = 3600;
/** A role assumed with another role's session is capped at one hour whatever it asks. */
export const ROLE_CHAINING_MAX_SECONDS = 3600;
/** IAM's own bounds on a role's MaxSessionDuration. */
export const ROLE_MAX_SESSION_BOUNDS = { min: 3600, max: 43_200 };
/** Session policies: an inline policy of at most 2048 characters and at most 10 managed policy ARNs. */
export const MAX_SESSION_POLICY_CHARS = 2048;
export const MAX_POLICY_ARNS = 10;
/**
 * AWS packs session policies into a binary form with its own budget and reports the share
 * used as PackedPolicySize. Its format is private; a raw-deflate size against this budget
 * behaves alike: small policies use a few percent, large high-entropy ones exceed 100 %.
 */
export const PACKED_POLICY_BUDGET_BYTES = 1024;
/** How long STS waits for an identity provider's discovery document or JWKS. */
export const IDP_TIMEOUT_MS = 5000;
/** How far ahead of STS's clock a token's iat or nbf may be: the 5 minutes AWS allows SigV4 dates too. */
export const ID_TOKEN_MAX_CLOCK_SKEW_SECONDS = 300;
/**
 * How long after its exp an OIDC ID token is still accepted: "IAM provides a five-minute
 * window beyond the expiration time specified in the JWT to account for clock skew"
 * (IAM User Guide, "Create an OpenID Connect (OIDC) identity provider in IAM").
 */
export const ID_TOKEN_EXPIRY_GRACE_SECONDS = 300;
/** The signing algorithms AWS accepts for OIDC ID tokens. */
export const ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"];
/** Echoed parameter values longer than this are cut, so a 3 KB policy does not flood a message. */
export const ECHO_MAX_CHARS = 128;
