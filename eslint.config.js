import neostandard from 'neostandard'

/*
 * The plugin's stages and the one direction their imports run (docs/ARCHITECTURE.md). Each entry
 * lists what a folder may not import at run time; a type-only import may point anywhere but into
 * the client or from protocol/, so declarations can name the types they are used with.
 */
const TOP = '(index|instance|route|options|types)\\.js$'
const stage = (files, forbidden, message, { allowTypeImports = true } = {}) => ({
  files,
  rules: {
    '@typescript-eslint/no-restricted-imports': ['error', {
      patterns: [{ regex: forbidden, message, allowTypeImports }]
    }]
  }
})

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'node_modules/**'] }),
  stage(['plugin/protocol/**'], '^\\.\\./', 'protocol/ is the wire contract shared by server and client: it imports nothing else of the plugin.', { allowTypeImports: false }),
  stage(['plugin/client/**'], '^\\.\\./(?!protocol/)', 'client/ runs in browsers: it imports protocol/ only.', { allowTypeImports: false }),
  stage(['plugin/broker/**', 'plugin/telemetry/**'], '^\\.\\./(?!protocol/|defaults\\.js$|errors\\.js$)', 'broker/ and telemetry/ are transports: they import protocol/, defaults and errors only.'),
  stage(['plugin/messages/**'], `^\\.\\./(topics|presence|connection|upgrade|asyncapi|client)/|^\\.\\./${TOP}`, 'messages/ comes before topics/, presence/, connection/ and upgrade/: take what it needs as arguments.'),
  stage(['plugin/topics/**'], `^\\.\\./(presence|connection|upgrade|asyncapi|client)/|^\\.\\./${TOP}`, 'topics/ comes before presence/, connection/ and upgrade/: take what it needs as arguments.'),
  stage(['plugin/presence/**', 'plugin/fleet/**'], `^\\.\\./(connection|upgrade|asyncapi|client)/|^\\.\\./${TOP}`, 'presence/ and fleet/ come before connection/ and upgrade/.'),
  stage(['plugin/connection/**'], `^\\.\\./(upgrade|asyncapi|client)/|^\\.\\./${TOP}`, 'connection/ comes before upgrade/.'),
  stage(['plugin/upgrade/**', 'plugin/asyncapi/**'], `^\\.\\./(client)/|^\\.\\./${TOP}`, 'upgrade/ and asyncapi/ import the stages below them, never the plugin\'s entry or the client.'),
  stage(['plugin/*.ts'], '^\\.\\./|^\\./client/', 'the plugin imports no application, test or client code.')
]
