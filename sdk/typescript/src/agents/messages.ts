/** What the model is told when a gated tool did not run (internal). */
import {
  PliuzAlreadyExecutedError,
  PliuzArgumentsError,
  PliuzCancelledError,
  PliuzConnectionError,
  type PliuzError,
  PliuzExecutionExpiredError,
  PliuzExpiredError,
  PliuzOutcomeUnknownError,
  PliuzRejectedError,
  PliuzRespondedError,
  PliuzServerError,
  PliuzTimeoutError,
} from "../errors.js";

export const notRun = (name: string, why: string): string => `The tool call ${name} was NOT executed: ${why}`;

export function messageFor(name: string, err: PliuzError, timeoutMs: number | undefined): string {
  if (err instanceof PliuzRejectedError) {
    const by = err.approval?.decision?.by;
    return `The tool call ${name} was rejected${by ? ` by ${by}` : ""} and was NOT executed. Reason: ${err.reason ?? "no reason given"}. Do not retry this call unchanged.`;
  }
  // The person answered in the tool's place: their message is the result.
  if (err instanceof PliuzRespondedError) return err.response;
  if (err instanceof PliuzExpiredError) return notRun(name, "the approval request expired before anyone decided.");
  if (err instanceof PliuzCancelledError) {
    const why = err.approval?.decision?.reason;
    return notRun(name, `the approval request was cancelled${why ? ` (${why}).` : "."}`);
  }
  if (err instanceof PliuzOutcomeUnknownError) {
    return `The tool call ${name} was started earlier for this same request but its outcome was never reported: outcome unknown. It was NOT run again; check whether it happened before retrying.`;
  }
  if (err instanceof PliuzExecutionExpiredError) {
    return notRun(name, "it was approved but not started within the policy's execution window; ask again.");
  }
  if (err instanceof PliuzTimeoutError) {
    return notRun(
      name,
      `no approval decision arrived${timeoutMs !== undefined ? ` within ${timeoutMs / 1000} seconds` : ""}.`,
    );
  }
  if (err instanceof PliuzAlreadyExecutedError) {
    const execution = err.approval?.execution;
    let detail = "";
    if (execution) {
      detail = ` Recorded outcome: ${execution.outcome ?? "unknown"}.`;
      if (execution.output_excerpt) detail += ` Output: ${execution.output_excerpt}`;
    }
    return `The tool call ${name} was already executed earlier for this same request and was not run again.${detail}`;
  }
  if (err instanceof PliuzConnectionError || err instanceof PliuzServerError) {
    return notRun(name, "the approval server could not be reached, so the call could not be approved.");
  }
  if (err instanceof PliuzArgumentsError) {
    return notRun(name, `the approved arguments are not valid for this tool (${err.message}).`);
  }
  return notRun(name, `the approval request failed (${err.message}).`);
}
