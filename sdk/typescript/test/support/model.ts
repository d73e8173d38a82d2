// A scripted model for the real @openai/agents Runner (no network): it calls one
// tool with fixed arguments, then answers with the text of the tool result it read.
import { type Model, type ModelRequest, type ModelResponse, Usage } from "@openai/agents";

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
