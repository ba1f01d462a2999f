/* The names of the error kinds, from the one table in errors.h. */
#include "errors.h"

const char *lr_error_kind_name(lr_error_kind kind) {
  static const char *const names[] = {
#define LR_X_NAME(name, str) str,
    LR_ERROR_KINDS(LR_X_NAME)
#undef LR_X_NAME
  };
  if ((int)kind < 0 || (int)kind >= (int)LR_E__COUNT) return "unknown";
  return names[kind];
}
