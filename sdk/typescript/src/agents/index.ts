/**
 * `@pliuz/sdk/agents`: Pliuz for the OpenAI Agents SDK (`@openai/agents`).
 *
 * - {@link gatedTool}: blocking mode, the gate waits inside the tool call.
 * - {@link Runs}: durable mode, the run pauses on the SDK's own interruption and resumes anywhere.
 */
export { type GatedToolOptions, gatedTool, isGatedTool, PliuzToolRejectedError } from "./gatedTool.js";
export { messageFor } from "./messages.js";
export {
  AGENT_METADATA_KEY,
  type RunnerRunOptions,
  Runs,
  type RunsOptions,
  type RunsResult,
  SESSION_METADATA_KEY,
} from "./runs.js";
