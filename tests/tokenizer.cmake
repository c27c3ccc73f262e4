# Tokenizers (coordinator/tokenizer/).
memllm_test(test_tokenizer_vocab SOURCES test_tokenizer_vocab.c LIBS mm_coordinator)
memllm_test(test_tokenizer_refs SOURCES test_tokenizer_refs.c LIBS mm_coordinator)
memllm_test(test_tokenizer_special SOURCES test_tokenizer_special.c LIBS mm_coordinator)
memllm_test(test_tokenizer_decode SOURCES test_tokenizer_decode.c LIBS mm_coordinator)
memllm_test(test_tokenizer_errors SOURCES test_tokenizer_errors.c LIBS mm_coordinator)
memllm_test(test_tokenizer_cli SOURCES test_tokenizer_cli.c LIBS mm_coordinator)
