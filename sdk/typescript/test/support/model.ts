// A scripted model for the real @openai/agents Runner (no network): it calls one
// tool with fixed arguments, then answers with the text of the tool result it read.
import { randomUUID } from "node:crypto";
import { Agent, type Model, type ModelRequest, type ModelResponse, tool, Usage } from "@openai/agents";
import { z } from "zod";
import { gatedTool } from "../../src/agents/index.js";
import type { Json } from "./server.js";

export interface ToolCallScript {
  tool: string;
  args: Record<string, unknown>;
  callId: string;
}

function lastToolOutput(input: ModelRequest["input"]): string | undefined {
  if (typeof input === "string") return undefined;
  const last = input[input.length - 1] as { type?: string; output?: unknown } | undefined;
  if (last?.type !== "function_call_result") return undefined;
  const out = last.output;
  if (typeof out === "string") return out;
  if (out && typeof out === "object" && "text" in out && typeof out.text === "string") return out.text;
  return JSON.stringify(out);
}

export class ScriptedToolModel implements Model {
  readonly seen: string[] = [];
  constructor(readonly script: ToolCallScript) {}

  async getResponse(request: ModelRequest): Promise<ModelResponse> {
    const output = lastToolOutput(request.input);
    if (output !== undefined) {
      this.seen.push(output);
      return {
        usage: new Usage(),
        output: [
          {
            type: "message",
            role: "assistant",
            status: "completed",
            content: [{ type: "output_text", text: `model saw: ${output}` }],
          },
        ],
      };
    }
    return {
      usage: new Usage(),
      output: [
        {
          type: "function_call",
          callId: this.script.callId,
          id: this.script.callId,
          name: this.script.tool,
          status: "completed",
          arguments: JSON.stringify(this.script.args),
        },
      ],
    };
  }

  // biome-ignore lint/correctness/useYield: the scripted model is never streamed
  async *getStreamedResponse(): AsyncIterable<never> {
    throw new Error("ScriptedToolModel does not stream");
  }
}

/** A model that calls `tool` once with `args` (a fresh call id), then answers with what it read. */
export function modelCalling(tool: string, args: Record<string, unknown>): ScriptedToolModel {
  return new ScriptedToolModel({ tool, args, callId: `call_${randomUUID()}` });
}

/**
 * An agent with one tool, `issue_refund` gated by the refunds policy, and a
 * model that calls it once for `orderId` (8000 cents); each run of the tool's
 * body is added to `ran`.
 */
export function gatedRefundAgent(name: string, orderId: string, ran: Json[]): Agent {
  const refund = gatedTool(
    tool({
      name: "issue_refund",
      description: "Refund.",
      parameters: z.object({ order_id: z.string(), amount_cents: z.number().int() }),
      execute: async (a) => {
        ran.push(a);
        return `refunded ${a.order_id}`;
      },
    }),
    { policy: "refunds" },
  );
  const model = modelCalling("issue_refund", { order_id: orderId, amount_cents: 8000 });
  return new Agent({ name, tools: [refund], model });
}
