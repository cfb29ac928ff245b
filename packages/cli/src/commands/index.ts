/**
 * The command table. Help texts are here so `ferry --help` and `ferry <cmd> --help` load
 * no server code; `load()` imports the implementation only when the command runs.
 */
export interface CommandModule {
  run (argv: string[]): Promise<number | undefined>
}

export interface Command {
  summary: string
  help: string
  load (): Promise<CommandModule>
}

export const commands: Record<string, Command> = {}
