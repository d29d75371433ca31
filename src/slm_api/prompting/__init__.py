"""Pure text work around the model: chat formats and templates, tool-call markup (render and
parse), stop strings. Nothing here imports llama_cpp; it is tested without a model."""
