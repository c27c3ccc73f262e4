/* Removing a directory and everything under it, for the scratch and old
 * copies that checkpoints and backups swap in by rename. */
#ifndef MEMLLM_REMOVE_TREE_H
#define MEMLLM_REMOVE_TREE_H

/* Removes path and all beneath it without following links. A path that
 * does not exist is already removed: 0. Else 0, or -1 with errno set. */
int remove_tree(const char *path);

#endif
