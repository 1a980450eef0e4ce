// Role assignments on the existing source lake (deployed into the lake's own resource group;
// this deployment never creates or changes the account itself).
param sourceAccountName string
param functionPrincipalId string
param factoryPrincipalId string
@allowed([
  'adf'
  'blob'
])
param copyEngine string

param operatorPrincipalId string
param operatorPrincipalType string
@description('true: the operators may restore into the lake (--in-place, --to-container there), which writes.')
param operatorRestoreInPlace bool

var roles = loadJsonContent('roles.json')

resource sourceAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: sourceAccountName
}

resource functionSourceBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(sourceAccount.id, functionPrincipalId, roles.StorageBlobDataContributor)
  scope: sourceAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataContributor)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource factorySourceBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (copyEngine == 'adf') {
  name: guid(sourceAccount.id, factoryPrincipalId, roles.StorageBlobDataReader)
  scope: sourceAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataReader)
    principalId: factoryPrincipalId
    principalType: 'ServicePrincipal'
  }
}


// The operators read the lake (status, verify, restore from snapshots); they write to it only when
// in-place restores are allowed, and then the Contributor role replaces the Reader role.
resource operatorSourceRead 'Microsoft.Authorization/roleAssignments@2022-04-01' = if ((operatorPrincipalId != '') && (!operatorRestoreInPlace)) {
  name: guid(sourceAccount.id, operatorPrincipalId, roles.StorageBlobDataReader)
  scope: sourceAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataReader)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorSourceWrite 'Microsoft.Authorization/roleAssignments@2022-04-01' = if ((operatorPrincipalId != '') && operatorRestoreInPlace) {
  name: guid(sourceAccount.id, operatorPrincipalId, roles.StorageBlobDataContributor)
  scope: sourceAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.StorageBlobDataContributor)
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}
