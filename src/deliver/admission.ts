// Admitting a subscription: the token must be genuine, unexpired and bound to the connecting viewer; the page's
// offset must belong to this ledger's incarnation and lie between the pruned horizon of the tables the page read (its
// token names them) and the head. A problem the
// browser can only fix by loading the page again is answered with a reload reason; a forged, expired or foreign
// token, or a disallowed origin, is refused (SubscriptionTokenError).
import type { QueryDependency } from "../analysis/types.ts";
import { deriveIdentity } from "../capture/context.ts";
import { SubscriptionTokenError } from "../errors.ts";
import type { Ledger } from "../ledger/types.ts";
import type { ReloadReason, SubscribeRequest } from "../protocol.ts";
import { type TokenClaims, verifyToken } from "./token.ts";

export interface Admission {
  claims: TokenClaims;
  /** The identity signature the connecting request yields (equal to the token's). */
  identity: string;
  /** The offset the page shows. */
  offset: number;
}

export async function admit(
  request: SubscribeRequest,
  context: { secret: string; origins: string[] | undefined; ledger: Ledger; position: number },
): Promise<Admission | { reload: ReloadReason }> {
  const claims = verifyToken(request.token, context.secret);
  const allowed = context.origins;
  if (allowed && !allowed.includes(request.headers.origin ?? "")) {
    throw new SubscriptionTokenError(
      "origin_not_allowed",
      `the connection's Origin ${request.headers.origin ?? "(none)"} is not one of ${allowed.join(", ")}`,
    );
  }
  const incarnation = context.ledger.incarnation;
  if (claims.incarnation !== incarnation || request.incarnation !== incarnation) {
    return { reload: "incarnation_mismatch" };
  }
  const identity = deriveIdentity(claims.inputs, request.headers).digest;
  if (identity !== claims.identity) {
    throw new SubscriptionTokenError(
      "identity_mismatch",
      `the connecting request's ${claims.inputs.join(", ") || "inputs"} differ from the ones the page was rendered with`,
    );
  }
  const offset = Number.isSafeInteger(request.offset) ? request.offset : claims.offset;
  // Too old only below the horizon of a table the page read: another table's retention is not the page's concern.
  // A token without tables (signed before they were recorded) is checked against every table's.
  if (offset < (await context.ledger.horizon(claims.tables))) return { reload: "offset_too_old" };
  if (offset > Math.max(context.position, await context.ledger.head())) return { reload: "offset_ahead_of_ledger" };
  return { claims, identity, offset };
}

/** The tables a render's reads touched, sorted: its token names them for the resume check above. */
export function tablesRead(queries: readonly QueryDependency[]): string[] {
  const tables = new Set<string>();
  for (const query of queries) for (const read of query.reads) tables.add(read.table);
  return [...tables].sort();
}
