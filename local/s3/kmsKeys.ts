// The KMS keys S3 may encrypt with, as the stack configures them: key ids, key ARNs, aliases,
// and in every account the AWS managed key aws/s3. S3 accepts a key id, key ARN, alias name or
// alias ARN in x-amz-server-side-encryption-aws-kms-key-id and resolves it to the key
// (S3 User Guide, "Specifying server-side encryption with AWS KMS (SSE-KMS)"); IAM authorises
// a key only by its key ARN ("To specify a KMS key in an IAM policy statement, you must use
// its key ARN", KMS Developer Guide, "cmks-in-iam-policies").
import { createHash } from "node:crypto";
import { S3ErrorReply } from "./errors.ts";

/** One customer managed key: its key ARN and the alias names that point at it. */
export interface KmsKeyConfig {
  /** arn:aws:kms:<region>:<account>:key/<key id> */
  arn: string;
  /** "alias/<name>", in the key's own account and region. */
  aliases?: string[];
}

/** Where a key id or alias name without an ARN lives: the bucket's region and the caller's account. */
export interface KeyScope {
  region: string;
  accountId: string;
}

const KEY_ARN = /^arn:aws:kms:([a-z0-9-]+):(\d{12}):key\/(.+)$/;
const ALIAS_ARN = /^arn:aws:kms:([a-z0-9-]+):(\d{12}):(alias\/.+)$/;
/** A key id (moto kms/responses.py `_validate_cmk_id`): a UUID, or mrk-<32 hex> for a multi-Region key. */
const KEY_ID = /^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;
export const MANAGED_ALIAS = "alias/aws/s3";

/**
 * The key id of an account's AWS managed key aws/s3 in a region: a key of its own, with its own
 * key ARN (KMS Developer Guide, "AWS managed keys"); AWS picks a random id, so here it is a UUID
 * derived from the account and region, the same for every request.
 */
function managedKeyId(scope: KeyScope): string {
  const hex = createHash("sha256").update(`aws/s3:${scope.accountId}:${scope.region}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export function managedKeyArn(scope: KeyScope): string {
  return `arn:aws:kms:${scope.region}:${scope.accountId}:key/${managedKeyId(scope)}`;
}

/** KMS's NotFoundException, which S3 passes on as KMS.NotFoundException, 400 (LocalStack s3/utils.py `validate_kms_key_id`; messages as moto kms/responses.py). */
function notFound(message: string): S3ErrorReply {
  return new S3ErrorReply("KMS.NotFoundException", message);
}

export class KmsKeys {
  private readonly keyArns = new Set<string>();
  /** Alias ARN -> key ARN. */
  private readonly aliases = new Map<string, string>();

  constructor(configs: KmsKeyConfig[] = []) {
    for (const { arn, aliases = [] } of configs) {
      const match = KEY_ARN.exec(arn);
      if (!match) throw new Error(`KMS key ${JSON.stringify(arn)} is not a key ARN (arn:aws:kms:<region>:<account>:key/<key id>)`);
      this.keyArns.add(arn);
      for (const alias of aliases) this.aliases.set(`arn:aws:kms:${match[1]}:${match[2]}:${alias}`, arn);
    }
  }

  /** The key ARN of a key named by key id, key ARN, alias name or alias ARN; KMS.NotFoundException when there is no such key. */
  resolve(named: string, scope: KeyScope): string {
    const aliasArn = named.startsWith("alias/") ? `arn:aws:kms:${scope.region}:${scope.accountId}:${named}` : ALIAS_ARN.test(named) ? named : undefined;
    if (aliasArn !== undefined) return this.resolveAlias(aliasArn);
    const keyArn = KEY_ARN.test(named) ? named : KEY_ID.test(named) ? `arn:aws:kms:${scope.region}:${scope.accountId}:key/${named}` : undefined;
    if (keyArn === undefined) throw notFound(`Invalid keyId ${named}`);
    if (this.keyArns.has(keyArn) || keyArn === managedKeyArn(scopeOf(keyArn))) return keyArn;
    throw notFound(`Key '${keyArn}' does not exist`);
  }

  private resolveAlias(aliasArn: string): string {
    const [, region, accountId, alias] = ALIAS_ARN.exec(aliasArn)!;
    if (alias === MANAGED_ALIAS) return managedKeyArn({ region: region!, accountId: accountId! });
    const keyArn = this.aliases.get(aliasArn);
    if (keyArn === undefined) throw notFound(`Alias ${aliasArn} is not found.`);
    return keyArn;
  }
}

function scopeOf(keyArn: string): KeyScope {
  const [, region, accountId] = KEY_ARN.exec(keyArn)!;
  return { region: region!, accountId: accountId! };
}
