#!/usr/bin/env node
// A GraphQL over WebSocket server (npm graphql-ws on `ws`, schema from npm graphql), a
// third-party peer for wsreplay's tests.
//
//   node graphql_server.js [--port N]
//
// Prints {"event":"listening","port":N}, then {"event":"subscribe","id":...} per operation.
// Subprotocol graphql-transport-ws, path /graphql. The schema: `query { hello }` answers
// "world"; `subscription { count(to: N) }` yields {"count":1} .. {"count":N} then completes.
// Nothing here is random: the operation id is the client's choice (a fresh UUID per
// subscription with graphql-ws's client), echoed in every `next` and `complete`.
'use strict';
const http = require('http');
const { GraphQLSchema, GraphQLObjectType, GraphQLString, GraphQLInt,
        GraphQLNonNull } = require('graphql');
const { WebSocketServer } = require('ws');
const { useServer } = require('graphql-ws/use/ws');
const { emit, parseArgs, listen } = require('./peerlib');

const opts = parseArgs('graphql_server.js', process.argv.slice(2), { url: false });

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: 'Query',
    fields: { hello: { type: GraphQLString, resolve: () => 'world' } },
  }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      count: {
        type: GraphQLInt,
        args: { to: { type: new GraphQLNonNull(GraphQLInt) } },
        subscribe: async function* count(_, { to }) {
          for (let i = 1; i <= to; i++) yield { count: i };
        },
      },
    },
  }),
});

const server = http.createServer();
const wss = new WebSocketServer({ server, path: '/graphql' });
useServer({
  schema,
  onSubscribe: (ctx, id) => emit({ event: 'subscribe', id }),
}, wss);
listen(server, opts.port);
