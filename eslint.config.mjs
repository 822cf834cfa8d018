import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // The Raft core is pure: no clock, no randomness, no timers, no I/O (STYLE.md).
    files: ['replica/raft/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'setImmediate', 'process'],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'time enters the Raft core as ticks' },
        { object: 'Math', property: 'random', message: 'randomness is injected into the Raft core' },
      ],
      'no-restricted-imports': ['error', { patterns: ['fs', 'net', 'node:*', 'nats', '*/storage/*', '*/transport/*'] }],
    },
  },
);
