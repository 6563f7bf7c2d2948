/**
 * The `tacit` CLI: one binary, subcommands by role — coordinator (operators), client (the
 * person on the laptop), run (ML teams), privacy and verify (reviewers), simulate.
 */
import { Command, CommanderError } from "commander";
import { reportError } from "./errors.ts";
import { registerSimulateCommand } from "./commands/simulate.ts";
import { registerCoordinatorCommands } from "./commands/coordinator.ts";
import { epsilonForRun, registerRunCommands } from "./commands/run.ts";
import { registerPrivacyCommands } from "./commands/privacy.ts";
import { registerVerifyCommand } from "./commands/verify.ts";
import { registerClientCommands } from "./commands/client.ts";
import { registerModelCommands } from "./commands/model.ts";

export function buildProgram(): Command {
  const program = new Command("tacit")
    .description("Tacit: privacy-preserving federated training of next-action models")
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerCoordinatorCommands(program);
  registerClientCommands(program);
  registerRunCommands(program);
  registerPrivacyCommands(program, { epsilonForRun });
  registerVerifyCommand(program);
  registerSimulateCommand(program);
  registerModelCommands(program);
  return program;
}

/**
 * A reader of our output that went away (`tacit simulate | head`, a supervisor that died) makes
 * the next write fail with EPIPE. Unhandled, that error kills the process on the spot, skipping
 * the graceful stop: an embedded redis-server was left running that way. Output to a closed pipe
 * is dropped instead, and the command stops as it would have.
 */
export function ignoreClosedPipes(streams: NodeJS.WritableStream[] = [process.stdout, process.stderr]): void {
  for (const s of streams) {
    s.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") throw err;
    });
  }
}

export async function main(argv: string[]): Promise<void> {
  ignoreClosedPipes();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.exitCode = reportError(err);
  }
}
