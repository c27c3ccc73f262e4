# The PNG charts of reports (common/plot_png.c, plot_ticks.c, plot_font.c).
memllm_test(test_plot_png SOURCES test_plot_png.c LIBS mm_common)
memllm_test(test_plot_ticks SOURCES test_plot_ticks.c LIBS mm_common)
memllm_test(test_plot_font SOURCES test_plot_font.c LIBS mm_common)
