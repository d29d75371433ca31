"""Downloads GGUF files from the Hugging Face Hub into MODELS_DIR. (STUB: to be built)"""
