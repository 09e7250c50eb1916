import { execFile } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { type Browser, type BrowserContextOptions, chromium, type Page } from 'playwright-core';

/**
 * The browser the dashboard's tests drive. By default it is the Chromium inside the npm package
 * @sparticuz/chromium, so that `npm ci && npm test` needs nothing but Node: the package carries the
 * browser brotli-compressed and only unpacks it, with no download. The devDependency is pinned to
 * exactly 153.0.0 because that is the build we saw work: it launches headless here on Node 20.20.2
 * although its `engines` field asks for Node >= 22.17 (only its unpacking code runs in Node, and that
 * needs nothing newer), while 141.0.0, whose `engines` accept Node 20, crashed at launch with SIGTRAP
 * after "eglGetProcAddress not found". Moving the pin means re-checking a launch on Node 20.
 */
export const CHROMIUM_OVERRIDE_ENV = 'ALIPAYPLUS_TEST_CHROMIUM';

/** The page's locale, pinned: what the browser makes of the machine's LANG varies (see `launchTestBrowser`). */
export const TEST_LOCALE = 'en-US';

export type BrowserSetupErrorCode =
  /** `ALIPAYPLUS_TEST_CHROMIUM` names something that is not an executable file. */
  | 'CHROMIUM_OVERRIDE_NOT_EXECUTABLE'
  /** The package's Chromium is built for Linux x64 only. */
  | 'CHROMIUM_UNSUPPORTED_PLATFORM'
  /** Unpacking the package's Chromium failed (disk full, unreadable package, changed package layout). */
  | 'CHROMIUM_UNPACK_FAILED'
  /** The unpacked copy under the temp dir is incomplete, or is not this user's alone. */
  | 'CHROMIUM_CACHE_UNUSABLE';

export class BrowserSetupError extends Error {
  readonly code: BrowserSetupErrorCode;

  constructor(code: BrowserSetupErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'BrowserSetupError';
    this.code = code;
  }
}

export interface TestChromium {
  readonly executablePath: string;
  /** Where it came from: the override variable, or the npm package. */
  readonly from: 'env' | 'package';
}

const require = createRequire(import.meta.url);
const run = promisify(execFile);

/**
 * The package's own `executablePath()` unpacks into `os.tmpdir()` itself, so the child it runs in is
 * given a private TMPDIR: the package's shared default, /tmp/chromium, is written mode 0700 by
 * whoever comes first (a root CI job would lock every other user out of it), can be left half
 * written by an interrupted run and then be trusted for ever, and can be planted by another user.
 */
const UNPACK = `
const { default: Chromium } = await import(process.argv[1]);
process.stdout.write(await Chromium.executablePath());
`;

function isErrno(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '');
}

/**
 * The package's Chromium, unpacked once per package version and user into a directory of its own
 * under the temp dir. It is unpacked into a staging directory and renamed into place, so the
 * directory exists only once complete, and two test processes that unpack at once both end up
 * using the one whose rename won.
 */
async function unpackedChromium(): Promise<string> {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new BrowserSetupError(
      'CHROMIUM_UNSUPPORTED_PLATFORM',
      `@sparticuz/chromium carries a Chromium for Linux x64 only, and this is ${process.platform} ${process.arch}: ` +
        `set ${CHROMIUM_OVERRIDE_ENV} to a Chromium or Chrome executable`,
    );
  const entry = require.resolve('@sparticuz/chromium');
  const manifest = join(dirname(entry), '..', 'package.json');
  const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string };
  const uid = process.getuid?.() ?? 0;
  const home = join(tmpdir(), `alipayplus-lifecycle-chromium-${version}-uid${uid}`);
  const executable = join(home, 'chromium');

  if (!existsSync(home)) {
    const staging = mkdtempSync(`${home}.partial-`);
    try {
      const { stdout } = await run(
        process.execPath,
        ['--input-type=module', '-e', UNPACK, pathToFileURL(entry).href],
        {
          env: { ...process.env, TMPDIR: staging },
        },
      );
      // A later package version that unpacked somewhere else would otherwise be renamed into place empty.
      if (stdout !== join(staging, 'chromium'))
        throw new BrowserSetupError(
          'CHROMIUM_UNPACK_FAILED',
          `@sparticuz/chromium ${version} unpacked to ${stdout}, not into the directory it was given (${staging})`,
        );
      renameSync(staging, home);
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      // Another process renamed its complete copy into place first: that one is as good as ours.
      if (!isErrno(error, 'ENOTEMPTY', 'EEXIST')) {
        if (error instanceof BrowserSetupError) throw error;
        throw new BrowserSetupError(
          'CHROMIUM_UNPACK_FAILED',
          `could not unpack @sparticuz/chromium ${version} into ${tmpdir()}: ${(error as Error).message}`,
          { cause: error },
        );
      }
    }
  }

  // Root runs what it finds here: the directory must be the one this user made, and nobody else's to change.
  const stat = lstatSync(home);
  if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o022) !== 0 || !existsSync(executable))
    throw new BrowserSetupError(
      'CHROMIUM_CACHE_UNUSABLE',
      `${home} is not a complete unpacked Chromium that only uid ${uid} can change: remove it and run again`,
    );
  return executable;
}

/** Which Chromium to drive: the one `ALIPAYPLUS_TEST_CHROMIUM` names, else the package's, unpacked. */
export async function testChromium(): Promise<TestChromium> {
  const override = process.env[CHROMIUM_OVERRIDE_ENV];
  if (override) {
    try {
      // statSync follows links: Debian's /usr/bin/chromium is a script, and often reached through one.
      if (!statSync(override).isFile()) throw new Error('not a file');
      accessSync(override, constants.X_OK);
    } catch (error) {
      throw new BrowserSetupError(
        'CHROMIUM_OVERRIDE_NOT_EXECUTABLE',
        `${CHROMIUM_OVERRIDE_ENV}=${override} is not an executable file: point it at a Chromium or Chrome, ` +
          'or unset it to use the one in @sparticuz/chromium',
        { cause: error },
      );
    }
    return { executablePath: override, from: 'env' };
  }
  return { executablePath: await unpackedChromium(), from: 'package' };
}

/**
 * Flags for a browser that must not reach past 127.0.0.1: the tests run on closed networks, and a
 * browser that tries to phone home there only waits and logs. Playwright itself adds --headless,
 * --no-sandbox (its `chromiumSandbox` defaults to false, which we keep explicit below), and a fresh
 * --user-data-dir per launch (it refuses one in `args`); the rest are ours, repeated where Playwright
 * already passes them so that this list alone states what the tests rely on.
 *
 * From the package's own `Chromium.args` only the two network ones are taken. The others are for
 * AWS Lambda (--single-process, --no-zygote, --in-process-gpu, SwiftShader GL) or switch off the web
 * security the dashboard's CSP test is there to exercise (--disable-web-security,
 * --allow-running-insecure-content, --disable-site-isolation-trials).
 */
const ARGS = [
  // The page draws SVG and 2D canvas only; without a GPU process no GL library is looked for.
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-domain-reliability',
  '--no-pings',
  `--lang=${TEST_LOCALE}`,
];

export interface TestBrowser extends TestChromium {
  readonly browser: Browser;
  /** A page in a new context with the pinned locale (options may add a viewport and the like). */
  newPage(options?: BrowserContextOptions): Promise<Page>;
  close(): Promise<void>;
}

/**
 * Launches the test Chromium headless, without the sandbox: CI runs as root, where Chromium refuses to
 * start sandboxed, and an unprivileged user may not be allowed the namespaces the sandbox needs. The
 * browser only ever loads the test's own server on 127.0.0.1.
 *
 * The locale is pinned three ways because each covers a different gap. With LANG=C.UTF-8 or LC_ALL=C
 * this Chromium reports `en-US@posix`, and with no LANG at all `und`; uPlot refuses the first at load
 * ("Invalid language tag") and the dashboard's charts are then never drawn. The context's `locale`
 * sets navigator.language and Intl, LANG and LC_ALL set what the browser process itself starts with,
 * and --lang its UI and Accept-Language.
 */
export async function launchTestBrowser(): Promise<TestBrowser> {
  const found = await testChromium();
  const browser = await chromium.launch({
    executablePath: found.executablePath,
    headless: true,
    chromiumSandbox: false,
    args: ARGS,
    env: { ...process.env, LANG: 'en_US.UTF-8', LC_ALL: 'en_US.UTF-8' },
  });
  return {
    ...found,
    browser,
    newPage: (options) => browser.newPage({ ...options, locale: TEST_LOCALE }),
    close: () => browser.close(),
  };
}
