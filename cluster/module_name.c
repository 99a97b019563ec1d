/* placeholder until the module's first source lands */
const char *lmz__cluster_module_name(void);
const char *lmz__cluster_module_name(void) { return "cluster"; }
