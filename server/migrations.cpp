#include "server/migrations.hpp"

namespace paddock::server::db {

// Column names equal the API's field names, so the type tables in
// resource_types.cpp map one to one. Times are epoch milliseconds.
const std::vector<std::string_view>& migrations() {
  static const std::vector<std::string_view> steps = {
      // 1: accounts, projects, members, API keys, registration tokens.
      R"sql(
CREATE TABLE accounts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL UNIQUE,
  name TEXT,
  description TEXT,
  kind TEXT NOT NULL CHECK (kind IN ('admin', 'user')),
  state TEXT NOT NULL DEFAULT 'active',
  transitioning TEXT NOT NULL DEFAULT 'no',
  transitioningMessage TEXT,
  created INTEGER NOT NULL
);
CREATE TABLE projects (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL UNIQUE,
  name TEXT,
  description TEXT,
  state TEXT NOT NULL DEFAULT 'active',
  transitioning TEXT NOT NULL DEFAULT 'no',
  transitioningMessage TEXT,
  created INTEGER NOT NULL
);
CREATE TABLE project_members (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL UNIQUE,
  name TEXT,
  description TEXT,
  projectId INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  accountId INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  role TEXT NOT NULL CHECK (role IN ('owner', 'member', 'readonly')),
  state TEXT NOT NULL DEFAULT 'active',
  transitioning TEXT NOT NULL DEFAULT 'no',
  transitioningMessage TEXT,
  created INTEGER NOT NULL,
  UNIQUE (projectId, accountId)
);
CREATE INDEX project_members_account ON project_members(accountId);
CREATE TABLE api_keys (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL UNIQUE,
  name TEXT,
  description TEXT,
  accountId INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
  projectId INTEGER REFERENCES projects(id) ON DELETE CASCADE,
  publicValue TEXT NOT NULL UNIQUE,
  secretSalt TEXT NOT NULL,
  secretHash TEXT NOT NULL,
  expiresAt INTEGER,
  state TEXT NOT NULL DEFAULT 'active',
  transitioning TEXT NOT NULL DEFAULT 'no',
  transitioningMessage TEXT,
  created INTEGER NOT NULL,
  CHECK ((accountId IS NULL) <> (projectId IS NULL))
);
CREATE TABLE registration_tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL UNIQUE,
  name TEXT,
  description TEXT,
  projectId INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  -- The token is looked up by its hash and kept only sealed (AES-GCM under
  -- the server's secrets key) so the store alone never reveals it.
  tokenHash TEXT UNIQUE,
  tokenSealed TEXT,
  ttl INTEGER NOT NULL DEFAULT 0,
  expiresAt INTEGER,
  maxUses INTEGER,
  uses INTEGER NOT NULL DEFAULT 0,
  image TEXT,
  createdBy TEXT,
  state TEXT NOT NULL,
  transitioning TEXT NOT NULL,
  transitioningMessage TEXT,
  created INTEGER NOT NULL
);
CREATE INDEX registration_tokens_project ON registration_tokens(projectId, created);
CREATE INDEX registration_tokens_transitioning ON registration_tokens(transitioning);
)sql",
      // 2: hosts with their agents' credentials, and what they report.
      R"sql(
CREATE TABLE hosts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL UNIQUE,
  name TEXT,
  description TEXT,
  projectId INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  state TEXT NOT NULL,
  transitioning TEXT NOT NULL DEFAULT 'no',
  transitioningMessage TEXT,
  created INTEGER NOT NULL,
  machineId TEXT NOT NULL,
  credentialKey TEXT NOT NULL UNIQUE,
  credentialSalt TEXT NOT NULL,
  credentialHash TEXT NOT NULL,
  registrationTokenId INTEGER,
  agentVersion TEXT, dockerVersion TEXT, dockerApiVersion TEXT, dockerState TEXT,
  os TEXT, kernel TEXT, arch TEXT,
  cpuCount INTEGER, cpuPercent REAL,
  memoryTotal INTEGER, memoryUsed INTEGER, diskTotal INTEGER, diskUsed INTEGER,
  labels TEXT, agentIp TEXT, ipAddresses TEXT,
  lastSeen INTEGER,
  conflict TEXT
);
CREATE INDEX hosts_project ON hosts(projectId, created);
CREATE INDEX hosts_machine ON hosts(projectId, machineId);
-- Credentials of removed hosts, so their agents hear "removed", not "unknown".
CREATE TABLE removed_hosts (
  credentialKey TEXT PRIMARY KEY,
  hostUuid TEXT NOT NULL,
  removed INTEGER NOT NULL
);
CREATE TABLE containers (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL UNIQUE,
  name TEXT,
  description TEXT,
  projectId INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  hostId INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
  dockerId TEXT NOT NULL,
  image TEXT, command TEXT, status TEXT, labels TEXT, ports TEXT,
  state TEXT NOT NULL,
  transitioning TEXT NOT NULL DEFAULT 'no',
  transitioningMessage TEXT,
  created INTEGER NOT NULL,
  UNIQUE (hostId, dockerId)
);
CREATE INDEX containers_project ON containers(projectId, created);
CREATE TABLE images (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  uuid TEXT NOT NULL UNIQUE,
  name TEXT,
  description TEXT,
  projectId INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  hostId INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
  dockerId TEXT NOT NULL,
  tags TEXT, size INTEGER,
  state TEXT NOT NULL DEFAULT 'active',
  transitioning TEXT NOT NULL DEFAULT 'no',
  transitioningMessage TEXT,
  created INTEGER NOT NULL,
  UNIQUE (hostId, dockerId)
);
CREATE INDEX images_project ON images(projectId, created);
)sql",
  };
  return steps;
}

}  // namespace paddock::server::db
