// backupd: all logic lives in hozo_core (see ARCHITECTURE.md).
#include "hozo/backupd.hpp"

int main(int argc, char** argv) { return hozo::run_backupd(argc, argv); }
