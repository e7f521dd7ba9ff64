# The streamfleet worker image (`docker build -t streamfleet:latest .`), used by docker-compose.yml's
# worker and k8s/worker-deployment.yaml. Never built on the project's machines (no Docker engine
# there): test/unit/dockerfile.test.ts checks it statically.
# Node major = package.json's `node` devDependency (the Node the repository runs and tests on).

# --- build: compile dist/ and pack the package exactly as npm would publish it
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts/stubs ./scripts/stubs
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY lib ./lib
COPY workers ./workers
COPY topologies ./topologies
RUN npm pack --pack-destination /tmp && mv /tmp/streamfleet-*.tgz /tmp/streamfleet.tgz

# --- runtime: the packed package with its runtime dependencies only, run as the unprivileged `node` user
FROM node:24-slim
ENV NODE_ENV=production \
    STREAMFLEET_ADMIN_HOST=0.0.0.0 \
    STREAMFLEET_ADMIN_PORT=9464
WORKDIR /app
COPY --from=build /tmp/streamfleet.tgz /tmp/streamfleet.tgz
RUN echo '{"name":"streamfleet-worker","private":true,"type":"module"}' > package.json \
 && npm install --omit=dev --no-audit --no-fund /tmp/streamfleet.tgz \
 && rm /tmp/streamfleet.tgz && npm cache clean --force
# The example topologies and their schemas as the default set; mount your own over /app/topologies.
COPY --chown=node:node topologies ./topologies
COPY --chown=node:node schemas ./schemas
USER node
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.STREAMFLEET_ADMIN_PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "node_modules/streamfleet/bin/streamfleet.mjs", "run"]
CMD ["topologies", "--json"]
