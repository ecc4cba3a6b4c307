// Create the `insiders` database: collections with $jsonSchema validators, their indexes,
// a least-privilege role and the application user.
//
// Run by the mongo image's entrypoint (mongosh) on the first start of an empty data volume.
// It is idempotent, so after changing validators.json or indexes.json it can be re-run by hand:
//   docker compose exec mongo sh -c 'mongosh --quiet -u "$MONGO_INITDB_ROOT_USERNAME" \
//     -p "$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin \
//     /docker-entrypoint-initdb.d/10-insiders.js'
//
// Secrets come from the environment only (docker-compose.yml passes them from .env).

const fs = require('fs');

const env = process.env;
const initDir = env.INSIDERS_MONGO_INIT_DIR || '/docker-entrypoint-initdb.d';
const dbName = env.INSIDERS_MONGO_DB || 'insiders';
const appUser = env.INSIDERS_MONGO_USER || 'insiders_app';
const appPassword = env.INSIDERS_MONGO_PASSWORD;
const roleName = 'insidersWriter';

if (!appPassword) {
  throw new Error('INSIDERS_MONGO_PASSWORD is not set: refusing to create the application user');
}

const validators = JSON.parse(fs.readFileSync(initDir + '/validators.json', 'utf8'));
const indexes = JSON.parse(fs.readFileSync(initDir + '/indexes.json', 'utf8'));
const target = db.getSiblingDB(dbName);

// Collections and validators. "error" rejects a document that breaks the contract instead of
// letting it reach the SQL sync and the dashboard; "strict" also checks updates.
const existing = target.getCollectionNames();
for (const name of Object.keys(validators)) {
  const options = {
    validator: validators[name],
    validationLevel: 'strict',
    validationAction: 'error',
  };
  if (existing.includes(name)) {
    target.runCommand(Object.assign({ collMod: name }, options));
    print(`insiders: updated validator of ${dbName}.${name}`);
  } else {
    target.createCollection(name, options);
    print(`insiders: created ${dbName}.${name}`);
  }
}

// Indexes: the unique ones are what makes re-running a month replace its documents rather than
// duplicate them.
for (const name of Object.keys(indexes)) {
  for (const spec of indexes[name]) {
    const options = { name: spec.name, unique: Boolean(spec.unique) };
    target.getCollection(name).createIndex(spec.key, options);
    print(`insiders: index ${dbName}.${name}.${spec.name}${spec.unique ? ' (unique)' : ''}`);
  }
}

// Least privilege: read, write, replace and delete documents, and create collections and
// indexes the package asks for on start-up. No collMod (it could loosen the validators),
// no dropCollection/dropDatabase, no user or role administration.
const privileges = [
  {
    resource: { db: dbName, collection: '' },
    actions: [
      'find',
      'insert',
      'update',
      'remove',
      'createCollection',
      'createIndex',
      'listCollections',
      'listIndexes',
    ],
  },
];
if (target.getRole(roleName)) {
  target.updateRole(roleName, { privileges: privileges, roles: [] });
} else {
  target.createRole({ role: roleName, privileges: privileges, roles: [] });
}

// The user comes last: the healthcheck logs in as this user, so "healthy" means all of the
// above is in place.
const roles = [{ role: roleName, db: dbName }];
if (target.getUser(appUser)) {
  target.updateUser(appUser, { pwd: appPassword, roles: roles });
  print(`insiders: updated user ${appUser}`);
} else {
  target.createUser({
    user: appUser,
    pwd: appPassword,
    roles: roles,
    mechanisms: ['SCRAM-SHA-256'],
  });
  print(`insiders: created user ${appUser}`);
}
