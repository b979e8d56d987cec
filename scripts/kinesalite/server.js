#!/usr/bin/env node
// Starts kinesalite (in memory) on 127.0.0.1 only.
//
//   node scripts/kinesalite/server.js --port PORT [--createStreamMs N]
//     [--deleteStreamMs N] [--updateStreamMs N] [--shardLimit N]
//
// kinesalite's own cli.js listens on every interface and has no host option;
// the tests' emulators must stay on loopback, so this wraps its library entry
// point with the same option names. Without --path kinesalite keeps its data
// in memory (memdown), so its optional native leveldown dependency is never
// loaded and scripts/lib/services.sh installs without it.
'use strict'

const kinesalite = require('kinesalite')

const NUMERIC = ['port', 'createStreamMs', 'deleteStreamMs', 'updateStreamMs', 'shardLimit']

function parse(args) {
  const options = {}
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i].replace(/^--/, '')
    const value = Number(args[i + 1])
    if (!args[i].startsWith('--') || !NUMERIC.includes(name) || !Number.isInteger(value) || value < 0) {
      throw new Error(`bad option ${args[i]} ${args[i + 1]} (expected --{${NUMERIC.join(',')}} N)`)
    }
    options[name] = value
  }
  return options
}

let options
try {
  options = parse(process.argv.slice(2))
} catch (e) {
  console.error(e.message)
  process.exit(2)
}
const port = options.port
delete options.port
if (port === undefined) {
  console.error('--port is required')
  process.exit(2)
}

const server = kinesalite(options).listen(port, '127.0.0.1', () => {
  const address = server.address()
  console.log('kinesalite listening at http://%s:%s with %j', address.address, address.port, options)
})
server.on('error', (e) => {
  console.error(e.stack || e)
  process.exit(1)
})
// Stop at once on SIGTERM/SIGINT: the state is in memory and disposable.
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0))
