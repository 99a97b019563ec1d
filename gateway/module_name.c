/* placeholder until the module's first source lands */
const char *lmz__gateway_module_name(void);
const char *lmz__gateway_module_name(void) { return "gateway"; }
