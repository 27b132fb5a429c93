#include "CWeirLinux.h"
int weir_placeholder(void) { return 0; }
