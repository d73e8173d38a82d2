"""A scripted stand-in for the Anthropic Messages API, so the real Claude Code CLI runs offline.

The CLI bundled with ``claude-agent-sdk`` talks to ``ANTHROPIC_BASE_URL``. This
server plays the model only: asked for the next turn, it calls the scripted
tools one after another (``tool_use`` blocks), and once every call of the
script has its ``tool_result`` it answers with text. Everything else (the
CLI, its permission checks, the SDK's control protocol, the tools themselves)
is real. The ``tool_result`` blocks it receives are kept, so a test can check
what the model was told.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

from server import free_port


class ModelStandIn:
    """``POST /v1/messages`` (streamed and not) answering from a script of tool calls."""

    def __init__(self, calls: list[tuple[str, str, dict[str, Any]]]) -> None:
        #: (tool_use_id, tool name, input) in the order the "model" makes them
        self.calls = calls
        #: tool_use_id -> the tool_result block the CLI sent back
        self.results: dict[str, dict[str, Any]] = {}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                message = stand_in.next_message(body)
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    for event in _events(message):
                        self.wfile.write(
                            f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
                        )
                else:
                    data = json.dumps(message).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ModelStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_message(self, body: dict[str, Any]) -> dict[str, Any]:
        for message in body.get("messages", []):
            content = message.get("content")
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    self.results[block["tool_use_id"]] = block
        for call_id, name, tool_input in self.calls:
            if call_id not in self.results:
                block = {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}
                return _message([block], "tool_use")
        return _message([{"type": "text", "text": "All done."}], "end_turn")


def _message(content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    return {
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": "claude-standin",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }


def _events(message: dict[str, Any]) -> list[dict[str, Any]]:
    start = {**message, "content": [], "stop_reason": None}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for i, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            events.append(
                {"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}}
            )
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            events.append(
                {"type": "content_block_start", "index": i,
                 "content_block": {"type": "text", "text": ""}}
            )  # fmt: skip
            delta = {"type": "text_delta", "text": block["text"]}
        events.append({"type": "content_block_delta", "index": i, "delta": delta})
        events.append({"type": "content_block_stop", "index": i})
    events.append(
        {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
         "stop_sequence": None}, "usage": {"output_tokens": 10}}
    )  # fmt: skip
    events.append({"type": "message_stop"})
    return events
