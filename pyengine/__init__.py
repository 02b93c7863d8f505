"""pyengine: a small, readable, real LLM inference engine with vLLM's API."""

__version__ = "0.1.0"
