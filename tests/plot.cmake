# The PNG charts of reports (common/plot_png.c).
memllm_test(test_plot_png SOURCES test_plot_png.c LIBS mm_common)
