/**
 * Human approval for an `@openai/agents` refund tool, with Pliuz (TypeScript).
 *
 * Against a Pliuz server (`pliuz serve`) with an agent key:
 *
 *   export PLIUZ_API_KEY=pliuz_ak_...        # pliuz agents create support-bot
 *   export PLIUZ_BASE_URL=http://127.0.0.1:8700
 *   export OPENAI_API_KEY=sk-...             # or PLIUZ_EXAMPLE_SCRIPTED=1 for no model at all
 *
 *   node refund.js                           # blocking: waits in the tool call for the decision
 *   node refund.js start                     # durable: pauses, prints the run id, exits
 *   node refund.js resume RUN_ID             # durable: continues the run (any process, any host)
 *
 * then approve, reject or edit the request in the inbox (or over the API). With
 * PLIUZ_EXAMPLE_SCRIPTED=1 a scripted model (`@openai/agents/testing`) asks for one
 * refund of PLIUZ_EXAMPLE_ORDER / PLIUZ_EXAMPLE_AMOUNT, so the example runs offline.
 */
import { appendFileSync } from "node:fs";
import { Agent, type Model, run, tool } from "@openai/agents";
import { ScriptedModel, assistantMessage, functionCall } from "@openai/agents/testing";
import { Runs, gatedTool } from "@pliuz/sdk/agents";
import { z } from "zod";

/** Stand-in for the payment provider. Appends to $PLIUZ_EXAMPLE_LEDGER if set. */
function chargeBack(orderId: string, amountCents: number): string {
  const ledger = process.env.PLIUZ_EXAMPLE_LEDGER;
  if (ledger) appendFileSync(ledger, `${JSON.stringify({ order_id: orderId, amount_cents: amountCents })}\n`);
  return `Refunded ${amountCents} cents on order ${orderId}.`;
}

const issueRefund = gatedTool(
  tool({
    name: "issue_refund",
    description: "Issue a customer refund.",
    parameters: z.object({ order_id: z.string(), amount_cents: z.number().int() }),
    execute: async ({ order_id, amount_cents }) => chargeBack(order_id, amount_cents),
  }),
  { policy: "refunds" },
);

function scriptedModel(resuming: boolean): Model | undefined {
  if (!process.env.PLIUZ_EXAMPLE_SCRIPTED) return undefined; // the default OpenAI model
  const orderId = process.env.PLIUZ_EXAMPLE_ORDER ?? "A-1";
  const amount = Number(process.env.PLIUZ_EXAMPLE_AMOUNT ?? "5000");
  const call = functionCall("issue_refund", { order_id: orderId, amount_cents: amount }, { callId: `call_${orderId}` });
  const done = assistantMessage("I have handled the refund request.");
  return new ScriptedModel(resuming ? [[done]] : [[call], [done]]);
}

function supportAgent(resuming = false): Agent {
  const model = scriptedModel(resuming);
  return new Agent({
    name: "Support agent",
    instructions: "You help customers with refunds.",
    tools: [issueRefund],
    ...(model ? { model } : {}),
  });
}

const [mode, runId] = process.argv.slice(2);
if (mode === "start") {
  const started = await new Runs().run(supportAgent(), "Refund order A-1, it arrived broken.");
  console.log(JSON.stringify({ runId: started.runId, status: started.status }));
} else if (mode === "resume" && runId) {
  const done = await new Runs().resume(runId, supportAgent(true));
  console.log(JSON.stringify({ runId, status: done.status, finalOutput: done.finalOutput }));
} else {
  const result = await run(supportAgent(), "Refund order A-1, it arrived broken.");
  console.log(JSON.stringify({ finalOutput: result.finalOutput }));
}
