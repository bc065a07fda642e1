import { Args, Flags } from '@oclif/core';
import { VggrpoCommand } from '../cli/base.js';
import { RATING_DEFAULTS } from '../rating/link.js';
import type { RatingResults } from '../rating/results.js';
import type { AddedRater } from '../stages/rate.js';

export default class Rate extends VggrpoCommand {
  static override summary =
    'Blind A/B rating of two eval sets of a run: a local rating page, raters, results.';
  static override description =
    'Serves a page that shows raters two videos of the same prompt and seed (one from each set, sides hidden and random) and asks which has the better visual quality and motion/geometry quality. Votes go to rating.sqlite in the run folder. --add-rater prints a rater’s link; --results prints win/tie/loss rates with Wilson 95% intervals and rater agreement.';
  static override examples = [
    '<%= config.bin %> rate runs/toy --add-rater alice',
    '<%= config.bin %> rate runs/toy',
    '<%= config.bin %> rate runs/toy --host 0.0.0.0 --port 8080',
    '<%= config.bin %> rate runs/toy --results --json',
  ];
  static override args = {
    run: Args.string({ description: 'run folder (with eval/A-NAME and eval/B-NAME sets)', required: true }),
  };
  static override flags = {
    host: Flags.string({
      description: 'address to listen on (another than 127.0.0.1 opens the page to the network)',
      default: RATING_DEFAULTS.host,
    }),
    port: Flags.integer({
      description: 'port to listen on (0: any free one)',
      default: RATING_DEFAULTS.port,
      min: 0,
      max: 65535,
    }),
    a: Flags.string({ description: 'reference eval set (or prefix of eval/A-NAME sets)', default: 'base' }),
    b: Flags.string({ description: 'candidate eval set (or prefix of eval/B-NAME sets)', default: 'final' }),
    'add-rater': Flags.string({
      description: 'add a rater and print their link (the same link again for a known name)',
      exclusive: ['results'],
    }),
    'allow-root': Flags.directory({
      description: 'also allow lineage (the eval sets’ trajectories) under this folder',
      multiple: true,
    }),
    results: Flags.boolean({
      description: 'print win/tie/loss rates per question and rater agreement',
      exclusive: ['add-rater'],
    }),
  };

  async run(): Promise<RatingResults | AddedRater | { url: string }> {
    const { addRater, rateResults, startRating } = await import('../stages/rate.js');
    const { args, flags } = await this.parse(Rate);
    const o = {
      run: args.run,
      a: flags.a,
      b: flags.b,
      host: flags.host,
      port: flags.port,
      allowRoots: flags['allow-root'],
    };
    if (flags['add-rater'] !== undefined) {
      const r = addRater(flags['add-rater'], o);
      this.log(r.link);
      return r;
    }
    if (flags.results) {
      const { formatResults } = await import('../rating/results.js');
      const r = rateResults(args.run);
      if (!this.jsonEnabled()) this.log(formatResults(r));
      return r;
    }
    const session = await startRating(
      o,
      (recorded, source) => this.resolveConfig({ file: flags.config, recorded, source }),
      { emit: (p) => this.log(p), note: (m) => this.note(m) },
    );
    // Serve until a signal ends the process (src/cli/base.ts: one line, exit 130/143).
    await new Promise<void>((done) => session.server.once('close', () => done()));
    return { url: session.url };
  }
}
