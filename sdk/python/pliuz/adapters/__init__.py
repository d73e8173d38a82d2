"""Framework adapters: ``pliuz.adapters.openai_agents``."""
