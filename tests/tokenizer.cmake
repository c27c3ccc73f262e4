# Tokenizers (coordinator/tokenizer*.c, coordinator/unicode*.c).
memllm_test(test_tokenizer_vocab SOURCES test_tokenizer_vocab.c LIBS mm_coordinator)
