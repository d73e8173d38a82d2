"""Framework adapters: ``pliuz.adapters.openai_agents``, ``pliuz.adapters.langgraph``,
``pliuz.adapters.claude_agent``."""
