# Model-file readers: GGUF and safetensors, against fixtures written by the
# reference Python writers (tools/make_file_fixtures.py), llama.cpp's vocab
# GGUFs, and damaged copies made inside the tests.
memllm_test(test_gguf SOURCES test_gguf.c LIBS mm_worker)
memllm_test(test_gguf_corrupt SOURCES test_gguf_corrupt.c LIBS mm_worker)
memllm_test(test_safetensors SOURCES test_safetensors.c LIBS mm_worker)
memllm_test(test_safetensors_corrupt SOURCES test_safetensors_corrupt.c LIBS mm_worker)
