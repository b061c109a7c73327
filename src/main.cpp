// hozo: all logic lives in hozo_core (see ARCHITECTURE.md).
#include "hozo/cli.hpp"

int main(int argc, char** argv) { return hozo::run_cli(argc, argv); }
