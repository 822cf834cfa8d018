import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { UsageError } from './errors';

/**
 * Where the CLI finds its gateway and token. Precedence, highest first:
 *   flags (--url, --token)  >  environment (DAFTKA_URL, DAFTKA_TOKEN)  >  the profile  >  default URL.
 * The profile is --profile, else DAFTKA_PROFILE, else the file's `current_profile`, else none.
 *
 * The file is `$DAFTKA_CONFIG`, else `$XDG_CONFIG_HOME/daftka/config.yaml`, else
 * `~/.config/daftka/config.yaml`:
 *
 *   current_profile: local
 *   profiles:
 *     local: { url: http://127.0.0.1:8080 }
 *     prod:  { url: https://daftka.example.com, token_file: ~/.config/daftka/prod.token }
 */

export const DEFAULT_URL = 'http://127.0.0.1:8080';
export const DEFAULT_TIMEOUT_MS = 30_000;

export interface Profile {
  url?: string;
  token?: string;
  /** A file whose first line is the token (kept out of the YAML, e.g. a mounted Secret). */
  token_file?: string;
  timeout_ms?: number;
}

export interface ConfigFile {
  current_profile?: string;
  profiles: Record<string, Profile>;
}

export interface Settings {
  url: string;
  token?: string;
  timeoutMs: number;
  profile?: string;
  configPath: string;
  /** Where url and token came from: flag, env, profile or default. */
  sources: { url: string; token: string };
}

export interface GlobalFlags {
  url?: string;
  token?: string;
  profile?: string;
  timeout?: number;
}

type Env = Record<string, string | undefined>;

export function configPath(env: Env): string {
  if (env.DAFTKA_CONFIG) return env.DAFTKA_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'daftka', 'config.yaml');
}

function expandHome(p: string, env: Env): string {
  return p.startsWith('~/') ? join(env.HOME || homedir(), p.slice(2)) : p;
}

/** Parse and check the file's text: an unknown key or a wrong type names the key. */
export function parseConfig(text: string, path: string): ConfigFile {
  let doc: unknown;
  try {
    doc = yaml.load(text);
  } catch (err) {
    throw new UsageError(`config ${path}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === undefined || doc === null) return { profiles: {} };
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`config ${path}: must be a mapping`);
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d))
    if (k !== 'current_profile' && k !== 'profiles')
      throw new UsageError(`config ${path}: unknown key "${k}" (allowed: current_profile, profiles)`);
  if (d.current_profile !== undefined && typeof d.current_profile !== 'string')
    throw new UsageError(`config ${path}: current_profile must be a string`);
  const profiles: Record<string, Profile> = {};
  const raw = d.profiles ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new UsageError(`config ${path}: profiles must be a mapping of name → {url, token, token_file}`);
  for (const [name, p] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof p !== 'object' || p === null || Array.isArray(p))
      throw new UsageError(`config ${path}: profiles.${name} must be a mapping`);
    const out: Profile = {};
    for (const [k, v] of Object.entries(p as Record<string, unknown>)) {
      if (k === 'url' || k === 'token' || k === 'token_file') {
        if (typeof v !== 'string') throw new UsageError(`config ${path}: profiles.${name}.${k} must be a string`);
        out[k] = v;
      } else if (k === 'timeout_ms') {
        if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
          throw new UsageError(`config ${path}: profiles.${name}.timeout_ms must be a positive integer`);
        out.timeout_ms = v;
      } else
        throw new UsageError(
          `config ${path}: unknown key profiles.${name}.${k} (allowed: url, token, token_file, timeout_ms)`,
        );
    }
    profiles[name] = out;
  }
  return { current_profile: d.current_profile as string | undefined, profiles };
}

export function readConfig(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { profiles: {} };
    throw new UsageError(`config ${path}: ${(err as Error).message}`);
  }
  return parseConfig(text, path);
}

export function normaliseUrl(u: string, from: string): string {
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    throw new UsageError(`${from}: "${u}" is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new UsageError(`${from}: "${u}" must be an http:// or https:// URL`);
  return u.replace(/\/+$/, '');
}

/** Resolve the settings from flags, environment and the config file (pure but for reading token_file). */
export function resolveSettings(flags: GlobalFlags, env: Env, file: ConfigFile, path: string): Settings {
  const profileName = flags.profile ?? env.DAFTKA_PROFILE ?? file.current_profile;
  let profile: Profile = {};
  if (profileName !== undefined) {
    const p = file.profiles[profileName];
    if (p === undefined) {
      const known = Object.keys(file.profiles);
      throw new UsageError(
        `profile "${profileName}" is not in ${path}` +
          (known.length ? ` (profiles: ${known.join(', ')})` : ' (the file has no profiles)'),
      );
    }
    profile = p;
  }
  let url: string;
  let urlSource: string;
  if (flags.url !== undefined) [url, urlSource] = [normaliseUrl(flags.url, '--url'), 'flag'];
  else if (env.DAFTKA_URL) [url, urlSource] = [normaliseUrl(env.DAFTKA_URL, 'DAFTKA_URL'), 'env'];
  else if (profile.url !== undefined)
    [url, urlSource] = [normaliseUrl(profile.url, `profile ${profileName}`), `profile ${profileName}`];
  else [url, urlSource] = [DEFAULT_URL, 'default'];

  let token: string | undefined;
  let tokenSource = 'none';
  if (flags.token !== undefined) [token, tokenSource] = [flags.token, 'flag'];
  else if (env.DAFTKA_TOKEN) [token, tokenSource] = [env.DAFTKA_TOKEN, 'env'];
  else if (profile.token !== undefined) [token, tokenSource] = [profile.token, `profile ${profileName}`];
  else if (profile.token_file !== undefined) {
    const f = expandHome(profile.token_file, env);
    try {
      token = readFileSync(f, 'utf8').split('\n')[0].trim();
    } catch (err) {
      throw new UsageError(`profile ${profileName}: token_file ${f}: ${(err as Error).message}`);
    }
    tokenSource = `profile ${profileName} (token_file)`;
  }
  if (token === '') token = undefined;
  return {
    url,
    token,
    timeoutMs: flags.timeout ?? profile.timeout_ms ?? DEFAULT_TIMEOUT_MS,
    profile: profileName,
    configPath: path,
    sources: { url: urlSource, token: token === undefined ? 'none' : tokenSource },
  };
}
