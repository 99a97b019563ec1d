/* placeholder until the module's first source lands */
const char *lmz__client_module_name(void);
const char *lmz__client_module_name(void) { return "client"; }
