// The start page: "Random name" fills the name field. Choosing a role submits
// the form (GET /student?name=… or /teacher?name=…) and works without script.
import {randomName} from "./common.js"

const name = document.getElementById("name")
document.getElementById("random").addEventListener("click", () => {
  name.value = randomName()
  name.focus()
})
