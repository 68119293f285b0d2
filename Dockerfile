# The example app's image: `docker compose up` builds it for every replica.
# Stage 1 installs production dependencies only (the plugin's and the app's, no test tooling);
# stage 2 runs them as the unprivileged `node` user.
# Both stages use the exact Node that scripts/install-node.sh pins for the tests, so the suite
# and test/ops/bundle.test.ts run on the runtime this image ships (that test checks they agree).

FROM node:24.22.3-bookworm-slim AS dependencies
WORKDIR /srv
COPY package.json package-lock.json ./
COPY app/package.json app/
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

FROM node:24.22.3-bookworm-slim
ENV NODE_ENV=production PORT=3000 HOST=0.0.0.0
WORKDIR /srv
COPY --from=dependencies /srv/node_modules node_modules
COPY package.json ./
COPY plugin plugin
COPY app app
USER node
EXPOSE 3000
# Readiness, as the load balancer sees it: a draining node reports unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:3000/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: Node is PID 1 and receives SIGTERM itself, which drains connections (1012) and
# flushes traces and logs before exiting.
STOPSIGNAL SIGTERM
CMD ["node", "--import", "tsx", "--import", "./app/otel.ts", "app/server.ts"]
