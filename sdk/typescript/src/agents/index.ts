/**
 * `@pliuz/sdk/agents`: Pliuz for the OpenAI Agents SDK (`@openai/agents`).
 *
 * - {@link gatedTool}: blocking mode, the gate waits inside the tool call.
 * - {@link Runs}: durable mode, the run pauses on the SDK's own interruption and resumes anywhere.
 */
export { gatedTool, isGatedTool, PliuzToolRejectedError, type GatedToolOptions } from "./gatedTool.js";
export { messageFor } from "./messages.js";
export {
  AGENT_METADATA_KEY,
  Runs,
  SESSION_METADATA_KEY,
  type RunnerRunOptions,
  type RunsOptions,
  type RunsResult,
} from "./runs.js";
